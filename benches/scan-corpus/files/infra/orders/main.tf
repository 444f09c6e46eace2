provider "aws" {
  region     = "ap-southeast-2"
  access_key = "ASIAE5S3SZ2MCPDUOSDW"
  secret_key = "t41LvD+6EofX1XLiRg5ljOeKZZM3Z5e8/q2nDnE3"
}

resource "aws_db_instance" "orders" {
  identifier           = "orders-prod"
  engine               = "postgres"
  engine_version       = "16.4"
  instance_class       = "db.t4g.medium"
  username             = "app"
  password             = "IG7Vvn!lyKWQSS9C"
  manage_master_user_password = false
  skip_final_snapshot  = false
  kms_key_id           = "arn:aws:kms:us-west-2:892938596729:key/6338d3e0-7ff3-4af1-a3e3-55dd963bc7cc"
}

resource "random_password" "db" {
  length  = 32
  special = true
}

data "aws_secretsmanager_secret_version" "orders" {
  secret_id = "prod/orders/db"
}

output "db_endpoint" {
  value = aws_db_instance.orders.endpoint
}
