provider "google" {
  credentials = file("${path.module}/sa.json")
  project     = "acme-prod"
}

resource "google_service_account" "ci" {
  account_id   = "ci-deployer"
  display_name = "CI deployer"
}

resource "aws_db_instance" "inventory" {
  identifier           = "inventory-prod"
  engine               = "postgres"
  engine_version       = "16.4"
  instance_class       = "db.t4g.medium"
  username             = "app"
  password             = random_password.db.result
  manage_master_user_password = false
  skip_final_snapshot  = false
  kms_key_id           = "arn:aws:kms:eu-central-1:775698675024:key/5fbab2a1-1c91-41bc-a43a-d3e7ecfa6843"
}

resource "random_password" "db" {
  length  = 32
  special = true
}

data "aws_secretsmanager_secret_version" "inventory" {
  secret_id = "prod/inventory/db"
}

output "db_endpoint" {
  value = aws_db_instance.inventory.endpoint
}
