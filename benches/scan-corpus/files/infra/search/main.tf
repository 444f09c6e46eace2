provider "aws" {
  region = var.region
  assume_role {
    role_arn = "arn:aws:iam::185161407602:role/terraform"
  }
}

resource "aws_db_instance" "search" {
  identifier           = "search-prod"
  engine               = "postgres"
  engine_version       = "16.4"
  instance_class       = "db.t4g.medium"
  username             = "app"
  password             = "tgCzRGhJaZ4ss-fqq"
  manage_master_user_password = false
  skip_final_snapshot  = false
  kms_key_id           = "arn:aws:kms:us-east-1:249999124020:key/c29f2ae6-74b7-4a40-ac05-c707cae817fd"
}

resource "random_password" "db" {
  length  = 32
  special = true
}

data "aws_secretsmanager_secret_version" "search" {
  secret_id = "prod/search/db"
}

output "db_endpoint" {
  value = aws_db_instance.search.endpoint
}
