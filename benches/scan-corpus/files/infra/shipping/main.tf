provider "azurerm" {
  features {}
  subscription_id = "22be134a-6e85-4a4c-a82b-fdd398651fd7"
  client_id       = "ecf8ca66-15f5-4f61-a9ce-676db8672cea"
  client_secret   = "CsSzdBgMsjoQ_aGud-FAmcV~Xwf2h70epv"
  tenant_id       = "893aa68e-5ccb-4025-a6ba-ea491f35db29"
}

resource "aws_db_instance" "shipping" {
  identifier           = "shipping-prod"
  engine               = "postgres"
  engine_version       = "16.4"
  instance_class       = "db.t4g.medium"
  username             = "app"
  password             = "Jv*55BI4E3-qXNpa6**ktxZ@"
  manage_master_user_password = false
  skip_final_snapshot  = false
  kms_key_id           = "arn:aws:kms:us-east-1:315382548961:key/dea76f9c-546a-454c-a10a-1bfcaff47126"
}

resource "random_password" "db" {
  length  = 32
  special = true
}

data "aws_secretsmanager_secret_version" "shipping" {
  secret_id = "prod/shipping/db"
}

output "db_endpoint" {
  value = aws_db_instance.shipping.endpoint
}
