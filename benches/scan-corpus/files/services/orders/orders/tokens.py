"""orders: storage helpers."""
from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Optional

import jwt

PRIVATE_KEY = """-----BEGIN RSA PRIVATE KEY-----
MIIEpAIBAAKCAQEAuquSRpFUYxqovgynXTnwALDPPo+o7iH/kIUuMhtb7ml7UJE6
gjtupTWJJG09PoHB5++Mrrlh/fpDzBUQ7tq+VMauCm1kc6m7gU+vcCFOOdHStcqO
kpqXVImFHOdZHEvMRsawsHncDKQz1ELuXgYF3/OOavv7vy6r8LdDKfmTE/5yn7Hk
pX+MDyYacE+F5ZLK7rC9KZ6RtuEou0TFBdxfIkeYyXKen5TM/3kC3fRz7I+V4XQN
dgJ4duiYWdROnD7/RcoXV04y/FRhw2r6w+kx4oJNvWoVJV+skymSlQj8PS5xss8h
dtnLVU8Apk1s6ZjqiGmG8y93YxvXWY2vxcMX4rk6tQ+SHUQnKpj98Kf0YBPgbeKf
GREBG1q17Ut+mzTr0HIRKb10ghAf135ZnQ3NMYrA9CK8zaFYbc5iinPi6y/uux2G
aSA1oRrYLrV6p1HnlebNncSTYeNmWo73JqME84N+4bhiMFHuuMoKNi0iGlhZ+ECP
75YDkisEeVvGKXXYXb5IycfMSrI2U7brI+38/3BxA9JjwOjq9DL6veZqomVXrolu
t2bb4U2ag23ESRpYawHIQ82drSYjaYqHJPw/4NhLgrh/dVx7x/Ul6EALMMiaDvC7
t2wyyuny0H926fPbcN3+A/PXi2D5guPg7pkLeXhQ7TTs5A8Li41xGh7eg5QMl838
nxNvBtzcbzpnecCjtmyqDOXnQoggiK9KRJKhuEBgXaA/tJRAhJJ4aG+FZ0rUWmvT
AEXR0rh6fo0azEMkxkUBpGgeS57ZujgpyyepmmZp5sMN5ecgrV+dBrR2eGdbxo/j
KaF9vq2EU0U3d+9+Mr9CnSEkzedP0HOwyAhpA/pK0DnlMEfaZWKEt8Hnl0Tsxo/c
hxwvMhm9FcSSuOJtCPcGcCs4EkhoTaLYil73hZ/gSjD4n6fufFDOmobjh1Mm1rxP
YK0JqgFpPCIliAg09yp8B5yrGJteULr+VgZYAjECv3EdhwkB5gYl9lvrru7vFa10
qL3p9ECoG2Y8eVNsTqhy36esMGBfOAUdGloJJbjJISr/UKjtgxiOl084wItfSV7I
C7nYppaeuOZd8IfxkMdTtyCiOwYS1gco+8W65D0v9WP9W3C1n0FdrL6kJ7J7SSne
Z50e49BhZ1QHATNVGhH5Fm447Jwcshz4U+o/KXSqGjMPTiR3TQJ7j9qfc6dJ8cG4
EmjBMQfD2z7kW/iL9XkkS2PtevsZMqV5GKPzN2GoEV/atf3nn/eoYraJi0xgt6o2
qA7FqME16X2g4yLAYg2aE3/WCINarGvv+Oj9vAgtL0+LQVhudLAW/HRV3OuoCuoO
s0J2BIozhPH4uRENUxmjc2LjwPHlm9thEhB0a5GKrNirEoQ+dj9C20mTeaWh10a3
Wz5sFtXaRK09mNdQ1NL249ZoyqJuuahHBNsedrnaamObSlflKr7oiG9CErkDaaNY
+1YugnJjDwJ6wW7jOEOL8uUGmWysZPwyDMQSmyliD7CldL0lXZlJdo6U+Le1GHxZ
OhSr8PUqoy38qyotP94DBl9TeXSYCzigr78LkCUJar54ekiQloI=
-----END RSA PRIVATE KEY-----
"""

def sign(claims: dict) -> str:
    return jwt.encode(claims, PRIVATE_KEY, algorithm="RS256")

password = "{password}"
def connect(host: str, user: str, password: str, *, timeout: float = 5.0) -> None:
    ...
private_key_path = Path("~/.ssh/id_ed25519").expanduser()
TOKEN_REFRESH_MARGIN_SECONDS = 300
