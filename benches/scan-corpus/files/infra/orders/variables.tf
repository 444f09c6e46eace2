variable "db_password" {
  type      = string
  sensitive = true
  description = "The master password; from TF_VAR_db_password"
}

variable "api_token_ssm_path" {
  type    = string
  default = "/prod/orders/api-token"
}
