resource "tls_self_signed_cert" "internal" {
  private_key_pem = <<-EOT
    -----BEGIN RSA PRIVATE KEY-----
    MIIEpAIBAAKCAQEA56GRqXEdj2mvYuhbvyOTVXf5h9jEeBgwEcHlXk4QaiUMxOzW
    rJbSlKvgxR9B2FcCM9no8gjUfFsUi/8HFyZuqJ91he8VIhAUps7FXvgTJ25HiIUb
    74cph4Q1tpeVCgqwNZ5f9f85mtTuIGm4Mts3Pr+jGnpU08QnI7FB85bWmq4z+NHB
    vxkpXj3sU026R7Z6k3k5r1l08cp3G5WhorH4EtTi03ed6StsxgQivM0BNSXKfRdV
    FQXFgPm9/tuWktFy2vOAlOKvgtGxaMX7584ARxYMtCQk0LUTeGpoWE1R3o/gCT7v
    pXyFdK/JMDkF6mb4McDeRcq70j1NpPpf796SyP+j17zuCDt+JX1siIpQ4gk2+cXO
    vqqWchZQClYQfcN5WZUIBh9vHIboXQHjulo31oUILVQtEJJrwjAN3ZVonojjVeiU
    o0YmAs564mI8VisgNGS6UpUvTcpIF6ZVt9Eq30Wglc28SMbpuFL4rXNglY2/N6qB
    kzzqcxaPmaIYU6t1TPJDU3zE9qDMx8Ca7BncXdzZHmYpUUr1OKWLBKL7gtGzJAaI
    KzHPKIfWsmVOhLni1gCPBUQ1onXGPg6wbC+NN956pj5cCBYfOzvYXIbsjmzU8Y26
    38C0g0TOu9kRqO8mFiS9M4KESX5LyoxSzuM0yv574fwDPkSbN139MRltcZu8dc0I
    92aQPS9mvC7k7Hg2f+NWz4cVTZUeJP4S0KGcVyarNHtJUT8yvNJRSOvnBdq5MUe3
    hSKbfNpi40ooduoVnbZ8uprUe8MVBqMjYoZak2g4YuvYgkPWF7Sr6oaCeN5IPnpx
    lVTRfQIc5KfvfBkmd7kaX2S8ixM9fBe3bt6NW1Cci1qIUzCFwK5F5eT04Nfw0SXe
    XCYSWWjan9YQDcOyAJlSTCasHCUtnU3IYKvwuegc0q+psV+ZXCJUh1t9hsi+HNQV
    iWYmLOTR316+k25meIKGxwf/oY0ye6VMcy1NoLb/kB0RR5TPt8l/L7Ys0HeVpOuq
    kP+OPfMMNYhewR+e+qCS8k3n0piZ9SZpadwSk8aDEEmUKpqOO9mQwa0wk+AzTmxB
    uHsSS1wWNpjO2OK+PCrasPc9PgPWFliqyW3hPxA9CdTgCV0/JKL/1uYbZaJOQE0b
    wug9VRtRNRd6VDz1y5KBR5z2A/i+YJeGtkd+qss4hG5cjeiGiR3HnHxUeKxk0/tq
    cbF93uftLGA8vVQtbFf2O5HNOPoN2PAHU6JVMxWuxZTQj8uDhR3mpCybhdvgsWHX
    SfO3BOxSzVR5Ta87ZrEdcyn+KREYsK+alOA+LOj/KGd2X+vMQpL7Sfzb6UPG7Zwl
    YyQGVi+0G3vK6hMmfitGX+UIEqPNm1JO76POtvIrPbwG5uWi7MtT2YEbb/7VexP7
    sigXqKFF4oxrWnQFy4YZ/oKDrR+WIYkY7co0HJtr1vQeR5zKLNm9DTokbfDejdmh
    wf/D6CEb2ttjlqFQRo+R3exbeMWWBTOy5ZYCbEpUFO7ZbbA36fndbQbGSH92ihJk
    6Mekno/Yc4QLM7mCsunjKJVslWjpaBbZI741r7Ud/jvTBWdWFI4=
    -----END RSA PRIVATE KEY-----
  EOT
  subject { common_name = "internal.acme" }
  validity_period_hours = 8760
}

resource "aws_db_instance" "notifier" {
  identifier           = "notifier-prod"
  engine               = "postgres"
  engine_version       = "16.4"
  instance_class       = "db.t4g.medium"
  username             = "app"
  password             = "WayDFy_!@GQ@nU+VB3"
  manage_master_user_password = false
  skip_final_snapshot  = false
  kms_key_id           = "arn:aws:kms:ap-southeast-2:545047193607:key/bb162f38-30be-4a27-abee-6378420432d8"
}

resource "random_password" "db" {
  length  = 32
  special = true
}

data "aws_secretsmanager_secret_version" "notifier" {
  secret_id = "prod/notifier/db"
}

output "db_endpoint" {
  value = aws_db_instance.notifier.endpoint
}
