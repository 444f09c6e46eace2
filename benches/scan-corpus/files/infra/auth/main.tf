provider "google" {
  credentials = file("${path.module}/sa.json")
  project     = "acme-prod"
}

resource "google_service_account" "ci" {
  account_id   = "ci-deployer"
  display_name = "CI deployer"
}

resource "aws_db_instance" "auth" {
  identifier           = "auth-prod"
  engine               = "postgres"
  engine_version       = "16.4"
  instance_class       = "db.t4g.medium"
  username             = "app"
  password             = var.db_password
  manage_master_user_password = false
  skip_final_snapshot  = false
  kms_key_id           = "arn:aws:kms:eu-central-1:386561955434:key/fd818188-e391-48e1-a729-e20dbb0f7d05"
}

resource "random_password" "db" {
  length  = 32
  special = true
}

data "aws_secretsmanager_secret_version" "auth" {
  secret_id = "prod/auth/db"
}

output "db_endpoint" {
  value = aws_db_instance.auth.endpoint
}
