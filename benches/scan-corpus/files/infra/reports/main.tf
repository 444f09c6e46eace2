provider "aws" {
  region     = "eu-central-1"
  access_key = "AKIAVYRCJIRL4RHU26ND"
  secret_key = "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"
}

resource "aws_db_instance" "reports" {
  identifier           = "reports-prod"
  engine               = "postgres"
  engine_version       = "16.4"
  instance_class       = "db.t4g.medium"
  username             = "app"
  password             = random_password.db.result
  manage_master_user_password = false
  skip_final_snapshot  = false
  kms_key_id           = "arn:aws:kms:us-east-1:261620392353:key/d31519d4-9ee0-4b66-afb7-ace8df1cb5ed"
}

resource "random_password" "db" {
  length  = 32
  special = true
}

data "aws_secretsmanager_secret_version" "reports" {
  secret_id = "prod/reports/db"
}

output "db_endpoint" {
  value = aws_db_instance.reports.endpoint
}
