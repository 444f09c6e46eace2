provider "aws" {
  region = var.region
  assume_role {
    role_arn = "arn:aws:iam::582798785783:role/terraform"
  }
}

resource "aws_db_instance" "billing" {
  identifier           = "billing-prod"
  engine               = "postgres"
  engine_version       = "16.4"
  instance_class       = "db.t4g.medium"
  username             = "app"
  password             = var.db_password
  manage_master_user_password = false
  skip_final_snapshot  = false
  kms_key_id           = "arn:aws:kms:us-east-1:237708979314:key/b5ed2bf4-c170-44ac-a3c8-478a4b827e64"
}

resource "random_password" "db" {
  length  = 32
  special = true
}

data "aws_secretsmanager_secret_version" "billing" {
  secret_id = "prod/billing/db"
}

output "db_endpoint" {
  value = aws_db_instance.billing.endpoint
}
