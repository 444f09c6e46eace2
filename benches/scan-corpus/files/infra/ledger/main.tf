resource "tls_self_signed_cert" "internal" {
  private_key_pem = <<-EOT
    -----BEGIN RSA PRIVATE KEY-----
    MIIEpAIBAAKCAQEAHCW9Ae7w+yYcz25F5cdCMsrmUelaSRw7n1YnS3Woh94CV8aw
    SYTEYYOJjdWCtwFsvVXV5J4a++wUj18UQ5Vs7fXAjXTiuH3NYQIdzb/5QmJINOQb
    NanoUfIuNXUsO9JGlnkG1mKqj186yqsXgdiimNNlD/7vZEfeS464t/Qeoczvgfwn
    2vjlQn5r5JXNH/v00MFRC3tGsq4tTCqpW+TYTc5kQOtcveZCybIuwwAlyleCU+Da
    PHxALFuMJZek4s2MkdYGwGw5xZCQbKcMafsXTxkgVDKPmykcBIo0he7NbD+B8Wpl
    uc31VfRyQiNs4N8gUqqIsbDs09oZJwQHA41UaKmh7Z9+vEHfkrxtZ/tRW94xcw/N
    xFU5FPvc57hB6LCCj1KwYzses0bJr8vKblbHFYDYb7tFbtRunuN0PYZbrl+RI67Y
    yKJwTo4Cjyj6oyZIC16eixqqNpckJTVoeyQRg6EpVKTDHnxmny0FvRvpTrAIyd4H
    J+0IU0e5EX+PoTFUq9G0pfWkK8z2q+UDTmIazGQWMVCWhpVcLpy6XDjSHlSFJAWf
    sBVabqzF43zPJesVRlA0aUt2p0N/1KRe7vtA3NOKYJK0DJ+yQAV6QwkvTR8LQ62O
    linr2Kbx8sKbl+KCwvbSBTAaj/zblK+qPMk+yMM1dixRCkQxqUiyTkrRBzxLv9d8
    SZKxLb8zMIenEnGAMIZu/6R27BFgW68S4U98sGfCr2wWu8ohkAFIONNdME1A4C5y
    3NeiXMkMrHdo4M/rZ7HktIXiS8St+wtI2iJ1DiVWnkomNNHmYi42dWTPIHVMmkGi
    jWrf1fzTL2pSHsfXzGRwUCknBC7I7jO+/R+RJq6yf99i5c3hGs/4GIYUNyHB9Jku
    1mxAfSz6q+gcErSLU0uQoLi4zWAHOaeU1ZlTnKFcGzPHhbyv7I2XUzCf5CpTqzs0
    /J9ubgdrZ3zqPYgJ79S5VjxgX83vP8Jt4zR9yStpalPoSb3NpyDKSAwI97f9Rynv
    F1bqK7m5WEPZyCju/O75YUWUpaUZ9ToRKW5OQv1IyehtGDsUXUO9A7OoZIlFK8eh
    /0VU31kY0vVxqUoZ5BG3szTP327CXyECMk+hyKpV+qANDpfnZ2LAhAw39YacgTum
    Rtkklh6UMk7XOGVLdm4ahsUyVUeEefRtEFWxhSCHhEvEuSlxFud0kgrIltd+I1b4
    XiVndAwaTBWY7quxr+SyV/KE1ojXn+NhfyQVuWfjB2STqm0LDFhjjnnUhvKhXf4E
    tWGigu9InFgJ3r+1UpX6ugSq0BPTMr0e8kYQSewvydQ+sSnMwEgNfuIpG616TzFS
    x16cJ4F42yKKfWjGgarUaIl0qEcH4EYr6DlA04U/CxpykiFMy147NR0PpGVTXJfX
    /NbU6CV80hxPU0SVI8lIxd0pSOhzpIwHtfnDgni4HravmfEGwe0tEXHHRF0ZSK70
    RXVpCsGPu0uzwHRDCNQubVuZJ/deicFWOh2bJGVJPz0+I1mu5byWSVwBR6PnQ+Oa
    QNW2QYt2cfOqu2D8+DpUZ9IXEGplbajBHHUjzMqSgFpKQt/UUKM=
    -----END RSA PRIVATE KEY-----
  EOT
  subject { common_name = "internal.acme" }
  validity_period_hours = 8760
}

resource "aws_db_instance" "ledger" {
  identifier           = "ledger-prod"
  engine               = "postgres"
  engine_version       = "16.4"
  instance_class       = "db.t4g.medium"
  username             = "app"
  password             = random_password.db.result
  manage_master_user_password = false
  skip_final_snapshot  = false
  kms_key_id           = "arn:aws:kms:us-east-1:908618054990:key/5e5c38dd-30e3-473b-aa7f-c6bf3262e8c3"
}

resource "random_password" "db" {
  length  = 32
  special = true
}

data "aws_secretsmanager_secret_version" "ledger" {
  secret_id = "prod/ledger/db"
}

output "db_endpoint" {
  value = aws_db_instance.ledger.endpoint
}
