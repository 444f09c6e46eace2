provider "azurerm" {
  features {}
  subscription_id = "e5ae204b-660d-4403-a9be-efc9e18ef689"
  client_id       = "65406638-c25b-4402-a499-5ec336f25b50"
  client_secret   = "D2bbmy3a~~HFwbM6R3HQ2qi1Q9Ui4GSaxB"
  tenant_id       = "32b5b9e9-33f2-43d5-a2ae-c1c023bebdb6"
}

resource "aws_db_instance" "gateway" {
  identifier           = "gateway-prod"
  engine               = "postgres"
  engine_version       = "16.4"
  instance_class       = "db.t4g.medium"
  username             = "app"
  password             = var.db_password
  manage_master_user_password = false
  skip_final_snapshot  = false
  kms_key_id           = "arn:aws:kms:ap-southeast-2:913596142466:key/8dda8cb0-cb7c-4e1b-ab34-58968bce344c"
}

resource "random_password" "db" {
  length  = 32
  special = true
}

data "aws_secretsmanager_secret_version" "gateway" {
  secret_id = "prod/gateway/db"
}

output "db_endpoint" {
  value = aws_db_instance.gateway.endpoint
}
