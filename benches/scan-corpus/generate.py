#!/usr/bin/env python3
"""Writes the labelled secret-scanning corpus: files/ and labels.tsv, deterministically.

    python3 benches/scan-corpus/generate.py          # rewrite files/ and labels.tsv
    python3 benches/scan-corpus/generate.py --reseal target/debug/kmseal
                                                     # also remake sealed/ with the CLI

Every secret is drawn from a fixed-seed generator in the alphabet and length of the real thing
(an AWS key id is AKIA and 16 random base32 characters): none was ever a live credential.
labels.tsv has one line per planted secret, `path<TAB>line<TAB>kind`, where line is one line
or FIRST-LAST for a secret that spans lines (a PEM block, a service-account key file): a
finding on any of those lines detects it. Every line without a label is a negative, and the
corpus is built to have tricky ones (placeholders, interpolations, environment look-ups,
parameters, hashes, UUIDs, public keys and certificates, lockfile integrity hashes, data URIs,
test words, other tools' ciphertexts, and kmseal's own ciphertexts, references and sealed
documents). sealed/ holds documents sealed by `kmseal config encrypt` under a throwaway key
(deleted at once); they are copied into files/ as they are.

Kinds are kmseal scan's rule ids, plus a few shapes it does not claim (marked in KINDS), so
the table says what neither tool looks for. Python 3 standard library only.
"""

import base64
import json
import os
import random
import shutil
import string
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "files")
SEALED = os.path.join(HERE, "sealed")
SEED = 20261202

# kind -> whether kmseal scan claims it (its RULES)
KINDS = {
    "private-key": True,
    "aws-access-key-id": True,
    "aws-secret-access-key": True,
    "gcp-service-account": True,
    "azure-connection-string": True,
    "github-token": True,
    "slack-token": True,
    "stripe-key": True,
    "jwt": True,
    "url-password": True,
    "password-assignment": True,
    "slack-webhook": False,
    "npm-token": False,
    "sendgrid-key": False,
    "bearer-token": False,
    "netrc-password": False,
}

R = random.Random(SEED)
ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"
HEX = "0123456789abcdef"
WORDS = (
    "amber anchor apple atlas badge basil beacon birch cable canyon cedar cobalt comet coral "
    "delta ember falcon fern fjord garnet glacier harbor hazel indigo iris jasper juniper kelp "
    "lantern lemon lilac maple marble meadow nectar nickel oak onyx orbit otter pepper pine "
    "plume quartz raven reef saffron sable spruce thistle tundra velvet walnut willow zephyr"
).split()


def rs(n, alphabet=ALNUM):
    return "".join(R.choice(alphabet) for _ in range(n))


def rbytes(n):
    return bytes(R.getrandbits(8) for _ in range(n))


def digits(n):
    return str(R.randint(1, 9)) + rs(n - 1, string.digits)


# ---- secrets, in the shapes of the real thing ----


def aws_id():
    return R.choice(["AKIA", "AKIA", "AKIA", "ASIA"]) + rs(16, string.ascii_uppercase + "234567")


def aws_secret():
    return rs(40, B64)


def gh_token():
    return R.choice(["ghp_", "ghp_", "gho_", "ghs_", "ghu_"]) + rs(36)


def gh_pat():
    return "github_pat_" + rs(22) + "_" + rs(59)


def slack_token():
    if R.random() < 0.6:
        return f"xoxb-{digits(12)}-{digits(13)}-{rs(24)}"
    return f"xoxp-{digits(12)}-{digits(12)}-{digits(13)}-{rs(32, HEX)}"


def stripe_key():
    prefix = R.choice(["sk_live_", "sk_live_", "rk_live_"])
    return prefix + (rs(24) if R.random() < 0.4 else "51" + rs(97))


def b64url_json(obj):
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def jwt():
    alg = R.choice(["HS256", "RS256", "ES256"])
    header = b64url_json({"alg": alg, "typ": "JWT"})
    iat = R.randint(1_700_000_000, 1_790_000_000)
    payload = b64url_json(
        {
            "sub": rs(12, string.digits),
            "iss": R.choice(["https://auth.acme.internal", "billing-api", "accounts"]),
            "scope": R.choice(["read write", "admin", "orders:read"]),
            "iat": iat,
            "exp": iat + R.choice([900, 3600, 86400 * 365]),
            "jti": rs(16, HEX),
        }
    )
    sig = {"HS256": 43, "RS256": 342, "ES256": 86}[alg]
    return f"{header}.{payload}.{rs(sig, B64URL)}"


def azure_storage():
    account = R.choice(["acmeprod", "billingdata", "stlogs", "mediastore"]) + rs(4, "0123456789")
    key = base64.b64encode(rbytes(64)).decode()
    return (
        f"DefaultEndpointsProtocol=https;AccountName={account};AccountKey={key};"
        "EndpointSuffix=core.windows.net"
    )


def azure_servicebus():
    ns = R.choice(["acme-bus", "orders-sb", "events-prod"]) + rs(3, "0123456789")
    key = base64.b64encode(rbytes(32)).decode()
    return (
        f"Endpoint=sb://{ns}.servicebus.windows.net/;"
        f"SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={key}"
    )


def azure_conn():
    return azure_storage() if R.random() < 0.6 else azure_servicebus()


def password(n=None):
    """A generated password: letters, digits and a few symbols safe in any syntax."""
    n = n or R.randint(14, 28)
    while True:
        v = rs(n, ALNUM + "-_.!@*+")
        if v[0] not in "-_.!@*+" and any(c.isdigit() for c in v):
            return v


def api_key_value():
    r = R.random()
    if r < 0.3:
        return rs(32, HEX)
    if r < 0.5:
        return rs(64, HEX)
    if r < 0.75:
        return base64.b64encode(rbytes(32)).decode()
    return rs(R.choice([32, 40]))


def diceware():
    return "-".join(R.choice(WORDS) for _ in range(4)) + "-" + str(R.randint(10, 99))


def django_key():
    return rs(50, string.ascii_lowercase + string.digits + "!@#%^&*(-_=+)")


def url_password():
    return rs(R.randint(14, 24), ALNUM + "-_~")


def db_url(scheme=None, user=None, host=None, db=None):
    scheme = scheme or R.choice(
        ["postgres", "postgresql", "mysql", "mongodb+srv", "amqp", "redis", "postgresql+psycopg2"]
    )
    user = user if user is not None else R.choice(["app", "svc_orders", "admin", "billing", "etl"])
    host = host or R.choice(
        ["db.internal:5432", "10.0.3.17:3306", "cluster0.x7k2p.mongodb.net", "mq.internal:5672",
         "cache.internal:6379", "orders-db.prod.svc.cluster.local:5432"]
    )
    db = db or R.choice(["app", "orders", "billing", "0", "analytics"])
    return f"{scheme}://{user}:{url_password()}@{host}/{db}"


def pem_body(kind):
    prefix = {
        "RSA": b"\x30\x82\x04\xa4\x02\x01\x00\x02\x82\x01\x01\x00",
        "": b"\x30\x82\x04\xbe\x02\x01\x00\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01",
        "EC": b"\x30\x77\x02\x01\x01\x04\x20",
        "OPENSSH": b"openssh-key-v1\x00\x00\x00\x00\x04none\x00\x00\x00\x04none",
        "DSA": b"\x30\x82\x01\xbb\x02\x01\x00\x02\x81\x81\x00",
    }[kind]
    size = {"RSA": 1190, "": 1218, "EC": 114, "OPENSSH": 380, "DSA": 440}[kind]
    raw = base64.b64encode(prefix + rbytes(size - len(prefix))).decode()
    return [raw[i : i + 64] for i in range(0, len(raw), 64)] if kind != "OPENSSH" else [
        raw[i : i + 70] for i in range(0, len(raw), 70)
    ]


def private_key(kind=None):
    kind = kind if kind is not None else R.choice(["RSA", "RSA", "", "EC", "OPENSSH", "DSA"])
    name = f"{kind} PRIVATE KEY".strip()
    return [f"-----BEGIN {name}-----", *pem_body(kind), f"-----END {name}-----"]


def pgp_private_key():
    raw = base64.b64encode(b"\x95\x03\xc6\x04" + rbytes(900)).decode()
    return (
        ["-----BEGIN PGP PRIVATE KEY BLOCK-----", ""]
        + [raw[i : i + 64] for i in range(0, len(raw), 64)]
        + ["=" + rs(4, B64), "-----END PGP PRIVATE KEY BLOCK-----"]
    )


def npm_token():
    return "npm_" + rs(36)


def sendgrid_key():
    return f"SG.{rs(22, B64URL)}.{rs(43, B64URL)}"


def slack_webhook():
    return f"https://hooks.slack.com/services/T{rs(8, string.ascii_uppercase + string.digits)}/B{rs(10, string.ascii_uppercase + string.digits)}/{rs(24)}"


# ---- things that are not secrets ----


def uuid():
    h = rs(32, HEX)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def sha1():
    return rs(40, HEX)


def sha256():
    return rs(64, HEX)


def integrity():
    return "sha512-" + base64.b64encode(rbytes(64)).decode()


def kmseal_ct(n=None):
    return "kmseal:v1:s:" + rs(n or R.randint(48, 90), B64URL)


def ref():
    return R.choice(
        [
            f"ref+aws-sm://prod/{R.choice(['db', 'orders', 'billing'])}#password",
            f"ref+vault-kv://secret/data/{R.choice(['api', 'app', 'ci'])}#token",
            f"ref+gcp-sm://projects/acme-prod/secrets/{R.choice(['stripe', 'slack'])}/versions/latest",
            "ref+env://DB_PASSWORD",
            f"ref+file:///run/secrets/{R.choice(['db_password', 'api_key'])}",
        ]
    )


def png_data_uri(n=180):
    raw = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + rbytes(n)
    return "data:image/png;base64," + base64.b64encode(raw).decode()


def cert():
    raw = base64.b64encode(b"\x30\x82\x03\x5d\x30\x82\x02\x45\xa0\x03\x02\x01\x02" + rbytes(850)).decode()
    return (
        ["-----BEGIN CERTIFICATE-----"]
        + [raw[i : i + 64] for i in range(0, len(raw), 64)]
        + ["-----END CERTIFICATE-----"]
    )


def public_key_pem():
    raw = base64.b64encode(b"\x30\x82\x01\x22\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01" + rbytes(280)).decode()
    return (
        ["-----BEGIN PUBLIC KEY-----"]
        + [raw[i : i + 64] for i in range(0, len(raw), 64)]
        + ["-----END PUBLIC KEY-----"]
    )


def ssh_pub(comment="deploy@ci"):
    if R.random() < 0.5:
        return "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + rs(43, B64) + " " + comment
    return "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ" + rs(368, B64) + " " + comment


def sops_value():
    return (
        f"ENC[AES256_GCM,data:{base64.b64encode(rbytes(18)).decode()},"
        f"iv:{base64.b64encode(rbytes(32)).decode()},tag:{base64.b64encode(rbytes(16)).decode()},type:str]"
    )


def ansible_vault():
    lines = ["$ANSIBLE_VAULT;1.1;AES256"]
    for _ in range(5):
        lines.append(rs(80, HEX))
    return lines


def placeholder():
    return R.choice(
        [
            "changeme", "CHANGEME", "<your-password>", "<db-password>", "xxxxxxxxxxxx",
            "********", "REPLACE_ME", "your-api-key-here", "TODO", "change-me-in-production",
            "<generate-strong-password>", "insert-token-here", "dummy-token-for-tests",
        ]
    )


APPS = ["orders", "billing", "inventory", "notifier", "gateway", "reports", "search", "auth",
        "ledger", "shipping", "catalog", "payments", "media", "analytics", "checkout"]
REGIONS = ["eu-west-1", "us-east-1", "us-west-2", "eu-central-1", "ap-southeast-2"]


# ---- the document builder ----


class Doc:
    def __init__(self, path):
        self.path = path
        self.secrets = []  # (kind, anchors, pem)

    def s(self, kind, value, pem=False):
        """Registers `value` (unique in the file) as a planted secret; returns it."""
        assert kind in KINDS, kind
        self.secrets.append((kind, [value], pem))
        return value

    def block(self, kind, lines, pem=True):
        """Registers a multi-line secret by its first and last unique lines; returns the text."""
        anchors = [ln for ln in lines if "-----" not in ln and ln.strip()]
        self.secrets.append((kind, [anchors[0], anchors[-1]], pem))
        return lines

    def span(self, kind, first, last):
        """A secret spanning the lines from the one containing `first` to the one containing `last`."""
        self.secrets.append((kind, [first, last], False))

    def labels(self, text):
        lines = text.split("\n")
        out = []
        for kind, anchors, pem in self.secrets:
            hits = []
            for a in anchors:
                found = [i for i, ln in enumerate(lines) if a in ln]
                assert found, f"{self.path}: anchor not found: {a[:30]}"
                hits.append(found[0])
            start, end = min(hits), max(hits)
            if pem:
                # Up to the BEGIN line, over the blank line an armored PGP block has.
                up = start - 1
                while up >= 0 and not lines[up].strip():
                    up -= 1
                if up >= 0 and "-----BEGIN" in lines[up]:
                    start = up
                if end + 1 < len(lines) and "-----END" in lines[end + 1]:
                    end += 1
            out.append((start + 1, end + 1, kind))
        return out


DOCS = []  # (Doc, text)


def emit(path, text, doc=None):
    doc = doc or Doc(path)
    doc.path = path
    if not text.endswith("\n"):
        text += "\n"
    DOCS.append((doc, text))


def chance(p):
    return R.random() < p


def indent(lines, n):
    return "\n".join((" " * n + ln) if ln else ln for ln in lines)


# ---- the file templates ----


def env_secret_lines(d, n):
    """`n` planted secrets in .env syntax, each a different kind of line."""
    menu = [
        lambda: f"DB_PASSWORD={d.s('password-assignment', password())}",
        lambda: f"DATABASE_URL={d.s('url-password', db_url())}",
        lambda: f"AWS_ACCESS_KEY_ID={d.s('aws-access-key-id', aws_id())}\nAWS_SECRET_ACCESS_KEY={d.s('aws-secret-access-key', aws_secret())}",
        lambda: f"STRIPE_SECRET_KEY={d.s('stripe-key', stripe_key())}",
        lambda: f"SLACK_BOT_TOKEN={d.s('slack-token', slack_token())}",
        lambda: f"GITHUB_TOKEN={d.s('github-token', gh_token())}",
        lambda: f"SESSION_SECRET={d.s('password-assignment', api_key_value())}",
        lambda: f"SMTP_PASSWORD={d.s('password-assignment', password())}",
        lambda: f"REDIS_URL=redis://:{d.s('url-password', url_password())}@cache.internal:6379/0",
        lambda: f'AZURE_STORAGE_CONNECTION_STRING="{d.s("azure-connection-string", azure_conn())}"',
        lambda: f"INTERNAL_API_KEY={d.s('password-assignment', api_key_value())}",
        lambda: f"export JWT_SIGNING_SECRET={d.s('password-assignment', password(32))}",
        lambda: f"SENDGRID_API_KEY={d.s('sendgrid-key', sendgrid_key())}",
        lambda: f"SLACK_WEBHOOK_URL={d.s('slack-webhook', slack_webhook())}",
        lambda: f'ADMIN_PASSWORD="{d.s("password-assignment", password())}"',
        lambda: f"SERVICE_JWT={d.s('jwt', jwt())}",
        lambda: f"ENCRYPTION_PASSPHRASE={d.s('password-assignment', diceware())}",
    ]
    return [m() for m in R.sample(menu, n)]


def env_negative_lines(n):
    menu = [
        lambda: "DB_PASSWORD_FILE=/run/secrets/db_password",
        lambda: "TOKEN_TTL_SECONDS=3600",
        lambda: f"SECRET_NAME=prod/{R.choice(APPS)}/db",
        lambda: f"KMSEAL_KEY=aws-kms://arn:aws:kms:{R.choice(REGIONS)}:{digits(12)}:key/{uuid()}",
        lambda: f"API_KEY={ref()}",
        lambda: f"DB_PASSWORD={kmseal_ct()}",
        lambda: f"STRIPE_PUBLISHABLE_KEY=pk_live_{rs(24)}",
        lambda: f"GIT_SHA={sha1()}",
        lambda: f"BUILD_ID={uuid()}",
        lambda: "PASSWORD_MIN_LENGTH=12",
        lambda: "AUTH_TOKEN_HEADER=X-Auth-Token",
        lambda: f"GOOGLE_CLIENT_ID={digits(12)}-{rs(32, string.ascii_lowercase + string.digits)}.apps.googleusercontent.com",
        lambda: "API_TOKEN=${CI_API_TOKEN}",
        lambda: f"DB_PASSWORD={placeholder()}",
        lambda: f"SENTRY_DSN=https://{rs(32, HEX)}@o{digits(6)}.ingest.sentry.io/{digits(7)}",
        lambda: f"SECRETS_MANAGER_ARN=arn:aws:secretsmanager:{R.choice(REGIONS)}:{digits(12)}:secret:prod/db-{rs(6)}",
        lambda: "SECRET_BACKEND=aws-secrets-manager",
        lambda: "PASSWORD_HASHER=argon2id",
        lambda: f"OAUTH_TOKEN_URL=https://auth.{R.choice(APPS)}.internal/oauth2/token",
        lambda: "DATABASE_URL=postgres://app:${DB_PASSWORD}@db.internal:5432/app",
        lambda: "REDIS_URL=redis://cache.internal:6379/0",
        lambda: "ACCESS_KEY_ROTATION_DAYS=90",
        lambda: f"CACHE_KEY_PREFIX={R.choice(APPS)}:v2:",
    ]
    return [m() for m in R.sample(menu, n)]


def t_env():
    names = [".env", ".env.production", ".env.staging", ".env.local", ".env.example", ".env.test"]
    for i, app in enumerate(APPS):
        d = Doc("")
        name = names[i % len(names)]
        head = [f"# {app} service: environment for docker compose and local runs",
                f"APP_NAME={app}", f"PORT={8000 + i}", "LOG_LEVEL=info", f"AWS_REGION={R.choice(REGIONS)}",
                "TZ=UTC", ""]
        if name in (".env.example", ".env.test"):
            body = env_negative_lines(7) + [
                "# fill these in from the password manager",
                f"DB_PASSWORD={placeholder()}",
                "STRIPE_SECRET_KEY=sk_live_" + "x" * 24 if chance(0.5) else "GITHUB_TOKEN=ghp_" + "x" * 36,
                "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
                "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            ]
        else:
            body = env_secret_lines(d, R.randint(1, 4)) + env_negative_lines(R.randint(3, 6))
            R.shuffle(body)
        tail = ["", "# feature flags", f"FEATURE_NEW_CHECKOUT={R.choice(['true', 'false'])}",
                f"WORKERS={R.randint(2, 16)}"]
        emit(f"services/{app}/{name}", "\n".join(head + body + tail), d)


def t_shell():
    for i in range(12):
        app = APPS[i]
        d = Doc("")
        secret_lines = []
        choice = i % 6
        if choice == 0:
            secret_lines = [f'export GITHUB_TOKEN="{d.s("github-token", gh_pat())}"']
        elif choice == 1:
            secret_lines = [f"export AWS_ACCESS_KEY_ID={d.s('aws-access-key-id', aws_id())}",
                            f"export AWS_SECRET_ACCESS_KEY={d.s('aws-secret-access-key', aws_secret())}"]
        elif choice == 2:
            secret_lines = [f"PGPASSWORD={d.s('password-assignment', password())} psql -h db.internal -U app -c 'select 1'"]
        elif choice == 3:
            secret_lines = [f'curl -fsS -X POST -H "Authorization: Bearer {d.s("bearer-token", rs(40))}" \\',
                            f'  https://api.{app}.internal/v1/deploy']
        elif choice == 4:
            secret_lines = [f"export DEPLOY_TOKEN={d.s('password-assignment', api_key_value())}",
                            f"export DATABASE_URL='{d.s('url-password', db_url())}'"]
        else:
            secret_lines = [f"SLACK_TOKEN={d.s('slack-token', slack_token())}"]
        negatives = R.sample([
            'export DB_PASSWORD="$(aws secretsmanager get-secret-value --secret-id prod/db --query SecretString --output text)"',
            'TOKEN=$(vault kv get -field=token secret/ci)',
            'read -rsp "password: " password',
            'export API_KEY="${API_KEY:?set API_KEY}"',
            f'sha256sum -c <<< "{sha256()}  dist/{app}.tar.gz"',
            'export KMSEAL_KEY="local://$HOME/.config/kmseal/dev.key"',
            'kmseal exec config/prod.yaml -- ./bin/server',
            'password_file="${XDG_RUNTIME_DIR}/db.pass"',
            f'git checkout {sha1()}',
            'if [ -z "${GITHUB_TOKEN:-}" ]; then echo "GITHUB_TOKEN is not set" >&2; exit 1; fi',
        ], 4)
        body = [
            "#!/usr/bin/env bash",
            f"# Deploys {app} to the staging cluster.",
            "set -euo pipefail",
            'cd "$(dirname "$0")/.."',
            "",
            f'REGION="{R.choice(REGIONS)}"',
            f'IMAGE="registry.internal/{app}:$(git rev-parse --short HEAD)"',
            *negatives[:2],
            *secret_lines,
            "",
            'log() { printf "deploy: %s\\n" "$*" >&2; }',
            'log "building $IMAGE"',
            'docker build -t "$IMAGE" .',
            'docker push "$IMAGE"',
            *negatives[2:],
            f'kubectl -n {app} set image deploy/{app} {app}="$IMAGE"',
            f'kubectl -n {app} rollout status deploy/{app} --timeout=300s',
        ]
        emit(f"scripts/deploy-{app}.sh", "\n".join(body), d)


def yaml_secret(d, key_indent):
    """One planted secret in YAML, with the key it would sit under."""
    sp = " " * key_indent
    q = R.choice(["", '"', "'"])
    menu = [
        lambda: f"{sp}password: {q}{d.s('password-assignment', password())}{q}",
        lambda: f"{sp}url: {q}{d.s('url-password', db_url())}{q}",
        lambda: f"{sp}api_key: {q}{d.s('password-assignment', api_key_value())}{q}",
        lambda: f"{sp}client_secret: {q}{d.s('password-assignment', rs(40, B64URL))}{q}",
        lambda: f"{sp}bot_token: {q}{d.s('slack-token', slack_token())}{q}",
        lambda: f"{sp}secret_key: {q}{d.s('stripe-key', stripe_key())}{q}",
        lambda: f"{sp}github_token: {q}{d.s('github-token', gh_token())}{q}",
        lambda: f"{sp}aws_access_key_id: {d.s('aws-access-key-id', aws_id())}\n{sp}aws_secret_access_key: {q}{d.s('aws-secret-access-key', aws_secret())}{q}",
        lambda: f'{sp}connection_string: "{d.s("azure-connection-string", azure_conn())}"',
        lambda: f"{sp}service_token: {q}{d.s('jwt', jwt())}{q}",
        lambda: f"{sp}webhook_secret: {q}{d.s('password-assignment', rs(32, HEX))}{q}",
        lambda: f"{sp}bind-password: {q}{d.s('password-assignment', password())}{q}",
        lambda: f"{sp}encryption_key: {q}{d.s('password-assignment', base64.b64encode(rbytes(32)).decode())}{q}",
    ]
    return R.choice(menu)()


def yaml_negative(key_indent):
    sp = " " * key_indent
    menu = [
        lambda: f"{sp}password: ${{DB_PASSWORD}}",
        lambda: f'{sp}password: "{{{{ .Values.db.password }}}}"',
        lambda: f"{sp}password: {placeholder()}",
        lambda: f'{sp}password: "{kmseal_ct()}"',
        lambda: f"{sp}api_key: {ref()}",
        lambda: f"{sp}token_ttl: 15m",
        lambda: f"{sp}secret_name: prod/{R.choice(APPS)}/credentials",
        lambda: f"{sp}password_min_length: 12",
        lambda: f"{sp}token_url: https://auth.{R.choice(APPS)}.internal/oauth2/token",
        lambda: f"{sp}credentials_file: /etc/{R.choice(APPS)}/credentials.json",
        lambda: f"{sp}commit: {sha1()}",
        lambda: f"{sp}request_id: {uuid()}",
        lambda: f"{sp}checksum: sha256:{sha256()}",
        lambda: f"{sp}api_key_header: X-Api-Key",
        lambda: f"{sp}token_provider: AwsCognitoIdentityTokenProvider",
        lambda: f"{sp}secret_store: vault-kv-v2",
        lambda: f"{sp}password: {sops_value()}",
        lambda: f"{sp}access_key_id_parameter: /prod/{R.choice(APPS)}/aws/access-key-id",
        lambda: f"{sp}tokenizer: bert-base-multilingual-cased",
        lambda: f"{sp}secret_arn: arn:aws:secretsmanager:{R.choice(REGIONS)}:{digits(12)}:secret:prod/{R.choice(APPS)}-{rs(6)}",
        lambda: f"{sp}logo: {png_data_uri(60)}",
        lambda: f"{sp}private_key_path: /etc/ssl/private/{R.choice(APPS)}.key",
        lambda: f"{sp}credential_source: Ec2InstanceMetadata",
    ]
    return R.choice(menu)()


def t_app_yaml():
    for i, app in enumerate(APPS):
        d = Doc("")
        n_secrets = R.choice([0, 0, 1, 1, 2, 3])
        db = [yaml_secret(d, 2) if k < n_secrets else yaml_negative(2) for k in range(2)]
        extra = [yaml_secret(d, 2) if k + 2 < n_secrets else yaml_negative(2) for k in range(2)]
        lines = [
            f"# {app}: application configuration",
            "server:",
            f"  port: {8080 + i}",
            "  read_timeout: 30s",
            "  shutdown_grace: 10s",
            "database:",
            "  driver: postgres",
            f"  host: {app}-db.internal",
            "  port: 5432",
            f"  name: {app}",
            f"  user: {app}_svc",
            *db,
            "  pool:",
            f"    max_open: {R.randint(5, 50)}",
            "    max_idle: 5",
            "cache:",
            "  backend: redis",
            "  ttl: 5m",
            "integrations:",
            *extra,
            *[yaml_negative(2) for _ in range(R.randint(2, 4))],
            "logging:",
            "  level: info",
            "  format: json",
            "features:",
            f"  - {R.choice(['new-checkout', 'async-export', 'dark-mode'])}",
            f"  - {R.choice(['audit-log', 'rate-limit', 'sso'])}",
        ]
        emit(f"services/{app}/config/{R.choice(['config', 'application', 'settings'])}.{R.choice(['yaml', 'yml'])}", "\n".join(lines), d)


def t_compose():
    for i in range(8):
        app = APPS[i + 3]
        d = Doc("")
        pg = (f"      - POSTGRES_PASSWORD={d.s('password-assignment', password())}" if i % 3 == 0 else
              f"      POSTGRES_PASSWORD: {d.s('password-assignment', password())}" if i % 3 == 1 else
              "      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?set it in .env}")
        env_style_list = i % 3 == 0
        app_env = []
        if env_style_list:
            app_env = [f"      - DATABASE_URL={d.s('url-password', db_url('postgres', 'app', 'db:5432', app))}",
                       "      - REDIS_URL=redis://cache:6379/0",
                       "      - LOG_LEVEL=debug"]
        else:
            app_env = [f"      DATABASE_URL: postgres://app:${{POSTGRES_PASSWORD}}@db:5432/{app}",
                       f"      STRIPE_API_KEY: {d.s('stripe-key', stripe_key())}" if i % 2 else "      STRIPE_API_KEY: ${STRIPE_API_KEY}",
                       "      LOG_LEVEL: debug"]
        lines = [
            "services:",
            "  db:",
            f"    image: postgres:16@sha256:{sha256()}",
            "    environment:",
            *(["      - POSTGRES_USER=app", pg] if pg.strip().startswith("-") else ["      POSTGRES_USER: app", pg]),
            "    volumes:",
            "      - pgdata:/var/lib/postgresql/data",
            "    healthcheck:",
            '      test: ["CMD-SHELL", "pg_isready -U app"]',
            "      interval: 5s",
            "  cache:",
            "    image: redis:7-alpine",
            f"  {app}:",
            "    build: .",
            "    depends_on: [db, cache]",
            "    ports:",
            f'      - "{8000 + i}:8080"',
            "    environment:",
            *app_env,
            "    secrets:",
            "      - db_password",
            "secrets:",
            "  db_password:",
            "    file: ./secrets/db_password.txt",
            "volumes:",
            "  pgdata: {}",
        ]
        emit(f"compose/{app}/docker-compose{'' if i % 2 else '.override'}.yml", "\n".join(lines), d)


def t_k8s():
    for i in range(16):
        app = APPS[i % len(APPS)]
        d = Doc("")
        kind = i % 4
        if kind == 0:  # an Opaque Secret with stringData / data
            pw = password()
            if chance(0.5):
                body = ["stringData:", f"  DB_PASSWORD: {d.s('password-assignment', pw)}",
                        f"  DATABASE_URL: {d.s('url-password', db_url())}"]
            else:
                b = base64.b64encode(pw.encode()).decode()
                body = ["data:", f"  password: {d.s('password-assignment', b)}",
                        f"  username: {base64.b64encode(b'app').decode()}"]
            lines = ["apiVersion: v1", "kind: Secret", "metadata:", f"  name: {app}-db", f"  namespace: {app}",
                     "type: Opaque", *body]
        elif kind == 1:  # a Deployment, env values inline or from secretKeyRef
            inline = chance(0.5)
            env = [
                "            - name: LOG_LEVEL",
                "              value: info",
                "            - name: DB_PASSWORD",
                "              valueFrom:",
                "                secretKeyRef:",
                f"                  name: {app}-db",
                "                  key: password",
            ]
            if inline:
                v = password()
                env += ["            - name: API_TOKEN", f'              value: "{d.s("password-assignment", v)}"']
                d.secrets[-1] = ("password-assignment", ["- name: API_TOKEN", v], False)
            lines = ["apiVersion: apps/v1", "kind: Deployment", "metadata:", f"  name: {app}",
                     f"  namespace: {app}", "spec:", "  replicas: 2", "  selector:", "    matchLabels:",
                     f"      app: {app}", "  template:", "    metadata:", "      labels:", f"        app: {app}",
                     "      annotations:", f"        checksum/config: {sha256()}",
                     "    spec:", f"      serviceAccountName: {app}", "      containers:",
                     f"        - name: {app}", f"          image: registry.internal/{app}@sha256:{sha256()}",
                     "          env:", *env, "          ports:", "            - containerPort: 8080"]
        elif kind == 2:  # a TLS secret: certificate (not secret) and key (secret)
            crt = cert()
            key = private_key(R.choice(["RSA", "", "EC"]))
            d.block("private-key", key)
            # A block scalar: its key line is part of the secret (where YAML parsers report it).
            d.secrets[-1] = ("private-key", ["tls.key: |", d.secrets[-1][1][-1]], True)
            lines = ["apiVersion: v1", "kind: Secret", "metadata:", f"  name: {app}-tls", f"  namespace: {app}",
                     "type: kubernetes.io/tls", "stringData:", "  tls.crt: |", indent(crt, 4), "  tls.key: |",
                     indent(key, 4)]
        else:  # ServiceAccount, ConfigMap: nothing secret
            lines = ["apiVersion: v1", "kind: ServiceAccount", "metadata:", f"  name: {app}", f"  namespace: {app}",
                     "  annotations:", f"    eks.amazonaws.com/role-arn: arn:aws:iam::{digits(12)}:role/{app}-irsa",
                     "---", "apiVersion: v1", "kind: ConfigMap", "metadata:", f"  name: {app}-config",
                     "data:", f"  DB_HOST: {app}-db.{app}.svc.cluster.local", "  TOKEN_AUDIENCE: sts.amazonaws.com",
                     "  PASSWORD_POLICY: min=12,upper,lower,digit", f"  SECRET_REF: {ref()}",
                     f"  PUBLIC_KEY_FINGERPRINT: SHA256:{rs(43, B64)}"]
        emit(f"k8s/{app}/{['secret-db', 'deployment', 'secret-tls', 'serviceaccount'][kind]}.yaml", "\n".join(lines), d)


def t_helm():
    for i in range(5):
        app = APPS[-(i + 1)]
        d = Doc("")
        lines = [
            f"# Default values for {app}.", "replicaCount: 2", "image:", f"  repository: registry.internal/{app}",
            "  tag: \"\"  # defaults to the chart's appVersion", "postgresql:", "  auth:",
            "    username: app",
            "    password: \"\"  # set with --set postgresql.auth.password=...",
            f"    existingSecret: {app}-db",
            "    secretKeys:", "      adminPasswordKey: postgres-password", "      userPasswordKey: password",
            "ingress:", "  enabled: true", f"  host: {app}.acme.internal", "  tls:", f"    secretName: {app}-tls",
            "externalSecrets:", "  enabled: true", "  refreshInterval: 1h", "  secretStoreRef:",
            "    name: aws-secrets-manager", "    kind: ClusterSecretStore",
        ]
        if i % 2 == 0:
            lines += ["smtp:", "  host: smtp.sendgrid.net", "  user: apikey",
                      f"  password: {d.s('sendgrid-key', sendgrid_key())}"]
        if i == 1:
            lines += ["monitoring:", f"  slackApiUrl: {d.s('slack-webhook', slack_webhook())}"]
        if i == 3:
            lines += ["oauth:", f"  clientSecret: {d.s('password-assignment', rs(35, B64URL))}"]
        emit(f"charts/{app}/values.yaml", "\n".join(lines), d)
        tpl = [
            "apiVersion: v1", "kind: Secret", "metadata:", f"  name: {{{{ include \"{app}.fullname\" . }}}}-db",
            "type: Opaque", "data:",
            "  password: {{ .Values.postgresql.auth.password | b64enc | quote }}",
            "  api-token: {{ required \"apiToken is required\" .Values.apiToken | b64enc }}",
        ]
        emit(f"charts/{app}/templates/secret.yaml", "\n".join(tpl))


def t_workflows():
    for i in range(5):
        app = APPS[i]
        d = Doc("")
        lines = [
            f"name: {app} CI", "on:", "  push:", "    branches: [main]", "  pull_request:", "jobs:", "  test:",
            "    runs-on: ubuntu-latest", "    env:", "      CARGO_TERM_COLOR: always",
            "      GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}",
        ]
        if i == 2:
            lines.append(f"      NPM_TOKEN: {d.s('npm-token', npm_token())}")
        if i == 4:
            lines.append(f"      SLACK_BOT_TOKEN: {d.s('slack-token', slack_token())}")
        lines += [
            "    steps:", f"      - uses: actions/checkout@{sha1()}  # v4.2.2",
            f"      - uses: actions/setup-node@{sha1()}  # v4", "        with:", "          node-version: 22",
            "      - run: npm ci", "      - run: npm test", "      - name: publish",
            "        if: github.ref == 'refs/heads/main'", "        env:",
            "          NODE_AUTH_TOKEN: ${{ secrets.NPM_TOKEN }}",
            "          AWS_ROLE_ARN: arn:aws:iam::" + digits(12) + ":role/gha-deploy",
            "        run: npm publish",
        ]
        if i == 1:
            lines += ["      - name: deploy", "        run: ./scripts/deploy.sh", "        env:",
                      f"          DEPLOY_KEY: {d.s('password-assignment', rs(40, B64URL))}"]
        emit(f".github/workflows/{app}-ci.yml", "\n".join(lines), d)


def t_toml():
    for i in range(10):
        app = APPS[i]
        d = Doc("")
        secret = [
            lambda: f'password = "{d.s("password-assignment", password())}"',
            lambda: f'url = "{d.s("url-password", db_url())}"',
            lambda: f'api_token = "{d.s("password-assignment", api_key_value())}"',
            lambda: f'access_key_id = "{d.s("aws-access-key-id", aws_id())}"\nsecret_access_key = "{d.s("aws-secret-access-key", aws_secret())}"',
            lambda: f'token = "{d.s("github-token", gh_token())}"',
            lambda: f'webhook = "{d.s("slack-webhook", slack_webhook())}"',
        ]
        negative = [
            'password = "${DB_PASSWORD}"', f'password = "{kmseal_ct()}"', f'api_token = "{ref()}"',
            'token_env = "API_TOKEN"', f'checksum = "{sha256()}"', 'password_file = "/run/secrets/db"',
            'secret_id_env = "VAULT_SECRET_ID"', f'rev = "{sha1()}"', 'password = ""',
        ]
        n = R.choice([0, 1, 1, 2])
        picks = R.sample(secret, n)
        lines = [
            f"# {app}.toml", "[server]", 'bind = "0.0.0.0:8080"', "workers = 4", "",
            "[database]", f'host = "{app}-db.internal"', "port = 5432", f'name = "{app}"',
            picks[0]() if n > 0 else R.choice(negative), "max_connections = 20", "",
            "[upstream]", f'base_url = "https://api.{app}.internal"', 'timeout = "5s"',
            picks[1]() if n > 1 else R.choice(negative), R.choice(negative), "",
            "[telemetry]", 'exporter = "otlp"', 'endpoint = "http://otel-collector:4317"',
        ]
        emit(f"services/{app}/{app}.toml", "\n".join(lines), d)
    # Cargo manifests and a Cargo.lock: checksums and git revisions
    d = Doc("")
    pkgs = []
    for name in ["aes-gcm", "base64", "clap", "hkdf", "rand_core", "serde", "serde_json", "tokio", "zeroize"]:
        pkgs += ["[[package]]", f'name = "{name}"', f'version = "1.{R.randint(0, 40)}.{R.randint(0, 9)}"',
                 'source = "registry+https://github.com/rust-lang/crates.io-index"', f'checksum = "{sha256()}"', ""]
    emit("tools/migrator/Cargo.lock", "\n".join(["# This file is automatically @generated by Cargo.", "version = 4", ""] + pkgs))
    emit("tools/migrator/Cargo.toml", "\n".join([
        "[package]", 'name = "migrator"', 'version = "0.3.1"', 'edition = "2021"', "",
        "[dependencies]", 'sqlx = { version = "0.8", features = ["postgres", "runtime-tokio"] }',
        f'internal-auth = {{ git = "https://github.com/acme/internal-auth", rev = "{sha1()}" }}',
        'secrecy = "0.10"', 'tokio = { version = "1", features = ["full"] }']))
    emit("tools/migrator/pyproject.toml", "\n".join([
        "[project]", 'name = "migrator-cli"', 'version = "0.3.1"', 'dependencies = ["psycopg[binary]>=3.2", "keyring>=25"]',
        "", "[tool.poetry.source]", 'name = "internal"', 'url = "https://pypi.internal/simple"',
        "", "[tool.pytest.ini_options]", 'addopts = "-q"', 'env = ["DB_PASSWORD=test", "API_TOKEN=dummy-token-for-tests"]']))


def t_ini():
    d = Doc("")
    lines = ["[default]", f"aws_access_key_id = {d.s('aws-access-key-id', aws_id())}",
             f"aws_secret_access_key = {d.s('aws-secret-access-key', aws_secret())}", f"region = {R.choice(REGIONS)}", "",
             "[profile ci]", f"aws_access_key_id = {d.s('aws-access-key-id', aws_id())}",
             f"aws_secret_access_key = {d.s('aws-secret-access-key', aws_secret())}",
             f"aws_session_token = {d.s('password-assignment', base64.b64encode(rbytes(180)).decode())}", "",
             "[profile prod]", f"role_arn = arn:aws:iam::{digits(12)}:role/admin", "source_profile = default",
             "mfa_serial = arn:aws:iam::" + digits(12) + ":mfa/ops"]
    emit("ops/aws/credentials.ini", "\n".join(lines), d)
    emit("ops/aws/config.ini", "\n".join([
        "[default]", f"region = {R.choice(REGIONS)}", "output = json", "", "[profile sso]",
        "sso_start_url = https://acme.awsapps.com/start", "sso_region = us-east-1",
        f"sso_account_id = {digits(12)}", "sso_role_name = ReadOnly", "credential_process = aws-vault exec ops --json"]))
    for i in range(6):
        app = APPS[i + 4]
        d = Doc("")
        sec = R.choice([
            lambda: f"password = {d.s('password-assignment', password())}",
            lambda: f"password: {d.s('password-assignment', password())}",
            lambda: f"sqlalchemy.url = {d.s('url-password', db_url('postgresql+psycopg2'))}",
            lambda: f"secret_key = {d.s('password-assignment', api_key_value())}",
            lambda: f"passwd = {d.s('password-assignment', password())}",
            lambda: "password = %(DB_PASSWORD)s",
        ])()
        lines = [
            f"; {app} settings", "[app]", f"name = {app}", "debug = false", f"secret_key_file = /etc/{app}/secret",
            "", "[database]", "host = db.internal", "port = 5432", "user = app", sec,
            "password_min_length = 12", "", "[ldap]", "uri = ldaps://ldap.acme.internal",
            "bind_dn = cn=svc,ou=services,dc=acme,dc=internal",
            "bind_password = ${LDAP_BIND_PASSWORD}" if chance(0.5) else
            f"bind_password = {d.s('password-assignment', password())}",
            "", "[cache]", "ttl = 300", f"key_prefix = {app}:",
        ]
        emit(f"services/{app}/{R.choice(['app.ini', 'settings.cfg', 'service.conf'])}", "\n".join(lines), d)
    d = Doc("")
    emit("ops/pgbouncer/userlist.txt", "\n".join([
        f'"app" "SCRAM-SHA-256$4096:{base64.b64encode(rbytes(16)).decode()}${base64.b64encode(rbytes(32)).decode()}:{base64.b64encode(rbytes(32)).decode()}"',
        f'"etl" "md5{rs(32, HEX)}"']))
    d = Doc("")
    emit("ops/netrc", "\n".join([
        f"machine api.heroku.com login ops@acme.internal password {d.s('netrc-password', rs(36, HEX + '-'))}",
        "machine github.com login ci-bot password ${GITHUB_TOKEN}"]), d)
    d = Doc("")
    emit("ops/npmrc", "\n".join([
        "registry=https://registry.npmjs.org/", f"//registry.npmjs.org/:_authToken={d.s('npm-token', npm_token())}",
        "//npm.pkg.github.com/:_authToken=${GITHUB_TOKEN}", "always-auth=true"]), d)


def t_properties():
    for i in range(7):
        app = APPS[i + 2]
        d = Doc("")
        pw = R.choice([
            lambda: f"spring.datasource.password={d.s('password-assignment', password())}",
            lambda: f"spring.datasource.url=jdbc:postgresql://db.internal:5432/{app}?user=app&password={d.s('url-password', url_password())}",
            lambda: "spring.datasource.password=${DB_PASSWORD}",
            lambda: f"app.jwt.secret={d.s('password-assignment', base64.b64encode(rbytes(48)).decode())}",
            lambda: f"mail.smtp.password = {d.s('password-assignment', password())}",
        ])()
        lines = [
            f"# {app} Spring Boot configuration", f"spring.application.name={app}", "server.port=8080",
            f"spring.datasource.url=jdbc:postgresql://db.internal:5432/{app}" if "datasource.url" not in pw else "",
            "spring.datasource.username=app", pw, "spring.datasource.hikari.maximum-pool-size=10",
            "spring.jpa.hibernate.ddl-auto=validate",
            "aws.credentials.provider=com.amazonaws.auth.DefaultAWSCredentialsProviderChain",
            "security.oauth2.client.registration.okta.client-id=0oa" + rs(17),
            ("security.oauth2.client.registration.okta.client-secret=" + d.s("password-assignment", rs(40, B64URL + "~")))
            if i % 2 else "security.oauth2.client.registration.okta.client-secret=${OKTA_CLIENT_SECRET}",
            "security.token.validity-seconds=3600", "management.endpoints.web.exposure.include=health,info",
            f"app.secrets.provider=ref+aws-sm://prod/{app}",
            "logging.level.root=INFO",
        ]
        emit(f"services/{app}/src/main/resources/application{'-prod' if i % 3 == 0 else ''}.properties",
             "\n".join(ln for ln in lines if ln), d)


def t_json():
    for i in range(12):
        app = APPS[i]
        d = Doc("")
        kind = i % 6
        if kind == 0:  # appsettings.json (.NET)
            obj = {"Logging": {"LogLevel": {"Default": "Information"}},
                   "ConnectionStrings": {
                       "Storage": d.s("azure-connection-string", azure_storage()),
                       "Sql": f"Server=tcp:{app}.database.windows.net,1433;Database={app};User ID=app;Password={d.s('password-assignment', password())};Encrypt=True;",
                   },
                   "AllowedHosts": "*"}
        elif kind == 1:  # Azure Functions local.settings.json
            obj = {"IsEncrypted": False, "Values": {
                "AzureWebJobsStorage": "UseDevelopmentStorage=true",
                "FUNCTIONS_WORKER_RUNTIME": "python",
                "ServiceBusConnection": d.s("azure-connection-string", azure_servicebus()),
                "APPINSIGHTS_INSTRUMENTATIONKEY": uuid()}}
        elif kind == 2:  # a client config with tokens
            obj = {"name": app, "apiBase": f"https://api.{app}.internal",
                   "auth": {"clientId": uuid(), "clientSecret": d.s("password-assignment", rs(40, B64URL)),
                            "tokenUrl": f"https://auth.{app}.internal/oauth/token"},
                   "slack": {"token": d.s("slack-token", slack_token()), "channel": "#alerts"},
                   "build": {"commit": sha1(), "checksum": sha256()}}
        elif kind == 3:  # all references and ciphertexts
            obj = {"database": {"host": "db.internal", "password": kmseal_ct()},
                   "stripe": {"secretKey": ref()}, "github": {"token": "${GITHUB_TOKEN}"},
                   "session": {"secret": "{{ env \"SESSION_SECRET\" }}"}, "logo": png_data_uri(120)}
        elif kind == 4:  # a Postman-like environment
            obj = {"id": uuid(), "name": f"{app} staging", "values": [
                {"key": "baseUrl", "value": f"https://staging.{app}.internal", "enabled": True},
                {"key": "accessToken", "value": d.s("jwt", jwt()), "enabled": True},
                {"key": "stripeKey", "value": d.s("stripe-key", stripe_key()), "enabled": True},
                {"key": "userId", "value": uuid(), "enabled": True}]}
        else:  # a JSON schema and settings with no secret
            obj = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "properties": {
                "password": {"type": "string", "minLength": 12, "writeOnly": True},
                "apiKey": {"type": "string", "pattern": "^[A-Za-z0-9]{32}$"},
                "token": {"$ref": "#/definitions/token"}}, "required": ["password"]}
        text = json.dumps(obj, indent=2)
        emit(f"services/{app}/{['appsettings.json', 'local.settings.json', 'client.json', 'secrets.template.json', 'staging.postman_environment.json', 'schema/credentials.schema.json'][kind]}", text, d)
    # GCP service-account key files
    for i in range(5):
        d = Doc("")
        project = R.choice(["acme-prod", "acme-data", "billing-482113", "ml-training-2291"])
        name = R.choice(["ci-deployer", "bq-loader", "terraform", "gke-nodes", "exporter"])
        key = private_key("")
        obj = {
            "type": "service_account", "project_id": project, "private_key_id": rs(40, HEX),
            "private_key": "\n".join(key) + "\n", "client_email": f"{name}@{project}.iam.gserviceaccount.com",
            "client_id": digits(21), "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": "https://oauth2.googleapis.com/token",
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/{name}%40{project}.iam.gserviceaccount.com",
            "universe_domain": "googleapis.com",
        }
        d.span("gcp-service-account", '"type": "service_account"', '"universe_domain"')
        emit(f"{['deploy', 'ops/gcp', 'infra/keys', 'ml', 'etl'][i]}/{name}-{rs(12, HEX)}.json", json.dumps(obj, indent=2), d)
    # An npm lockfile: integrity hashes
    pk = {"name": "web", "version": "1.0.0", "lockfileVersion": 3, "requires": True, "packages": {"": {"name": "web", "version": "1.0.0"}}}
    for name in ["react", "react-dom", "axios", "jsonwebtoken", "dotenv", "zod", "lodash", "express"]:
        pk["packages"][f"node_modules/{name}"] = {
            "version": f"{R.randint(1, 19)}.{R.randint(0, 20)}.{R.randint(0, 9)}",
            "resolved": f"https://registry.npmjs.org/{name}/-/{name}-1.0.0.tgz", "integrity": integrity()}
    emit("web/package-lock.json", json.dumps(pk, indent=2))
    emit("web/package.json", json.dumps({"name": "web", "private": True, "scripts": {
        "dev": "vite", "build": "tsc && vite build", "test": "vitest run"},
        "dependencies": {"react": "^19.0.0", "axios": "^1.7.0", "jsonwebtoken": "^9.0.2"}}, indent=2))
    emit("web/tsconfig.json", json.dumps({"compilerOptions": {"target": "ES2022", "strict": True, "module": "ESNext"}}, indent=2))


def t_lockfiles():
    lines = ["# THIS IS AN AUTOGENERATED FILE. DO NOT EDIT THIS FILE DIRECTLY.", "# yarn lockfile v1", ""]
    for name in ["@babel/core", "chalk", "commander", "debug", "ms", "semver", "uuid"]:
        v = f"{R.randint(1, 9)}.{R.randint(0, 20)}.{R.randint(0, 9)}"
        lines += [f'"{name}@^{v}":', f'  version "{v}"',
                  f'  resolved "https://registry.yarnpkg.com/{name}/-/{name.split("/")[-1]}-{v}.tgz#{sha1()}"',
                  f"  integrity {integrity()}", ""]
    emit("web/yarn.lock", "\n".join(lines))
    lines = ["lockfileVersion: '9.0'", "", "packages:", ""]
    for name in ["esbuild", "rollup", "vite", "typescript"]:
        lines += [f"  {name}@{R.randint(0, 5)}.{R.randint(0, 20)}.{R.randint(0, 9)}:",
                  f"    resolution: {{integrity: {integrity()}}}", "    engines: {node: '>=18'}", ""]
    emit("web/pnpm-lock.yaml", "\n".join(lines))
    lines = []
    for mod in ["github.com/aws/aws-sdk-go-v2", "github.com/jackc/pgx/v5", "golang.org/x/crypto", "github.com/golang-jwt/jwt/v5"]:
        v = f"v{R.randint(0, 5)}.{R.randint(0, 30)}.{R.randint(0, 9)}"
        lines += [f"{mod} {v} h1:{base64.b64encode(rbytes(32)).decode()}", f"{mod} {v}/go.mod h1:{base64.b64encode(rbytes(32)).decode()}"]
    emit("cmd/gateway/go.sum", "\n".join(lines))
    lines = []
    for name in ["requests", "sqlalchemy", "boto3", "pyjwt"]:
        lines += ["[[package]]", f'name = "{name}"', f'version = "2.{R.randint(0, 30)}.{R.randint(0, 9)}"', "files = [",
                  f'    {{file = "{name}-2.0.0-py3-none-any.whl", hash = "sha256:{sha256()}"}},',
                  f'    {{file = "{name}-2.0.0.tar.gz", hash = "sha256:{sha256()}"}},', "]", ""]
    emit("tools/migrator/poetry.lock", "\n".join(lines))
    emit("tools/migrator/requirements.txt", "\n".join(
        f"{n}==2.{R.randint(0, 30)}.0 --hash=sha256:{sha256()}" for n in ["requests", "boto3", "pyjwt", "cryptography"]))


def t_terraform():
    for i in range(10):
        app = APPS[i]
        d = Doc("")
        kind = i % 5
        if kind == 0:
            lines = ['provider "aws" {', f'  region     = "{R.choice(REGIONS)}"',
                     f'  access_key = "{d.s("aws-access-key-id", aws_id())}"',
                     f'  secret_key = "{d.s("aws-secret-access-key", aws_secret())}"', "}", ""]
        elif kind == 1:
            lines = ['provider "aws" {', "  region = var.region", "  assume_role {",
                     f'    role_arn = "arn:aws:iam::{digits(12)}:role/terraform"', "  }", "}", ""]
        elif kind == 2:
            lines = ['provider "google" {', '  credentials = file("${path.module}/sa.json")',
                     '  project     = "acme-prod"', "}", "",
                     'resource "google_service_account" "ci" {', '  account_id   = "ci-deployer"',
                     '  display_name = "CI deployer"', "}", ""]
        elif kind == 3:
            pem = private_key("RSA")
            d.block("private-key", pem)
            lines = ['resource "tls_self_signed_cert" "internal" {', "  private_key_pem = <<-EOT",
                     indent(pem, 4), "  EOT", '  subject { common_name = "internal.acme" }',
                     "  validity_period_hours = 8760", "}", ""]
        else:
            lines = ['provider "azurerm" {', "  features {}", f'  subscription_id = "{uuid()}"',
                     f'  client_id       = "{uuid()}"',
                     f'  client_secret   = "{d.s("password-assignment", rs(34, ALNUM + "~._-"))}"',
                     f'  tenant_id       = "{uuid()}"', "}", ""]
        db_pw = (f'  password             = "{d.s("password-assignment", password())}"' if i % 3 == 0 else
                 "  password             = var.db_password" if i % 3 == 1 else
                 "  password             = random_password.db.result")
        lines += [
            f'resource "aws_db_instance" "{app}" {{', f'  identifier           = "{app}-prod"',
            '  engine               = "postgres"', '  engine_version       = "16.4"',
            '  instance_class       = "db.t4g.medium"', '  username             = "app"', db_pw,
            "  manage_master_user_password = false", "  skip_final_snapshot  = false",
            f'  kms_key_id           = "arn:aws:kms:{R.choice(REGIONS)}:{digits(12)}:key/{uuid()}"', "}", "",
            'resource "random_password" "db" {', "  length  = 32", "  special = true", "}", "",
            f'data "aws_secretsmanager_secret_version" "{app}" {{', f'  secret_id = "prod/{app}/db"', "}",
            "", 'output "db_endpoint" {', f"  value = aws_db_instance.{app}.endpoint", "}",
        ]
        emit(f"infra/{app}/main.tf", "\n".join(lines), d)
        d = Doc("")
        tfvars = [f'region = "{R.choice(REGIONS)}"', f'environment = "{R.choice(["prod", "staging"])}"',
                  f'vpc_id = "vpc-{rs(17, HEX)}"', f'ami = "ami-{rs(17, HEX)}"']
        if i % 2 == 0:
            tfvars.append(f'db_password = "{d.s("password-assignment", password())}"')
        else:
            tfvars.append('db_password_secret_arn = "arn:aws:secretsmanager:eu-west-1:' + digits(12) + ':secret:prod/db-' + rs(6) + '"')
        if i == 3:
            tfvars.append(f'datadog_api_key = "{d.s("password-assignment", rs(32, HEX))}"')
        emit(f"infra/{app}/{'prod' if i % 2 else 'staging'}.tfvars", "\n".join(tfvars), d)
        emit(f"infra/{app}/variables.tf", "\n".join([
            'variable "db_password" {', '  type      = string', '  sensitive = true',
            '  description = "The master password; from TF_VAR_db_password"', "}", "",
            'variable "api_token_ssm_path" {', "  type    = string", f'  default = "/prod/{app}/api-token"', "}"]))


def t_python():
    for i in range(18):
        app = APPS[i % len(APPS)]
        d = Doc("")
        kind = i % 9
        if kind == 0:
            body = ["import boto3", "", "", "def client():", "    return boto3.client(", '        "s3",',
                    f'        region_name="{R.choice(REGIONS)}",',
                    f'        aws_access_key_id="{d.s("aws-access-key-id", aws_id())}",',
                    f'        aws_secret_access_key="{d.s("aws-secret-access-key", aws_secret())}",', "    )"]
        elif kind == 1:
            body = ["import os", "", f'SECRET_KEY = "{d.s("password-assignment", django_key())}"',
                    "DEBUG = False", f'ALLOWED_HOSTS = ["{app}.acme.internal"]', "DATABASES = {", '    "default": {',
                    '        "ENGINE": "django.db.backends.postgresql",', f'        "NAME": "{app}",',
                    '        "USER": "app",', '        "PASSWORD": os.environ["DB_PASSWORD"],', '        "HOST": "db.internal",',
                    "    }", "}", 'AUTH_PASSWORD_VALIDATORS = [{"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"}]',
                    'PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]']
        elif kind == 2:
            body = ["from sqlalchemy import create_engine", "", f'engine = create_engine("{d.s("url-password", db_url("postgresql+psycopg2"))}", pool_pre_ping=True)']
        elif kind == 3:
            body = ["import stripe", "from slack_sdk import WebClient", "",
                    f'stripe.api_key = "{d.s("stripe-key", stripe_key())}"',
                    f'slack = WebClient(token="{d.s("slack-token", slack_token())}")']
        elif kind == 4:
            body = ["import requests", "", f'API_BASE = "https://api.{app}.internal"', "",
                    "def fetch(path: str) -> dict:",
                    f'    headers = {{"Authorization": "Bearer {d.s("jwt", jwt())}"}}',
                    "    return requests.get(API_BASE + path, headers=headers, timeout=10).json()"]
        elif kind == 5:
            body = ["from github import Github", "", f'gh = Github("{d.s("github-token", gh_token())}")',
                    f'repo = gh.get_repo("acme/{app}")']
        elif kind == 6:
            pem = private_key("RSA")
            d.block("private-key", pem)
            body = ["import jwt", "", 'PRIVATE_KEY = """' + pem[0], *pem[1:], '"""', "",
                    "def sign(claims: dict) -> str:", '    return jwt.encode(claims, PRIVATE_KEY, algorithm="RS256")']
        elif kind == 7:
            body = ["from azure.storage.blob import BlobServiceClient", "",
                    f'CONN = "{d.s("azure-connection-string", azure_conn())}"',
                    "blobs = BlobServiceClient.from_connection_string(CONN)"]
        else:
            body = ["import hvac", "", f'client = hvac.Client(url="https://vault.acme.internal:8200", token="{d.s("password-assignment", "hvs." + rs(91))}")']
        negatives = R.sample([
            "def connect(host: str, user: str, password: str, *, timeout: float = 5.0) -> None:\n    ...",
            'password = os.environ["DB_PASSWORD"]',
            'api_key = os.getenv("API_KEY", "")',
            'token = response.json()["access_token"]',
            "password = getpass.getpass(\"Password: \")",
            "self.api_key = api_key",
            'TOKEN_REFRESH_MARGIN_SECONDS = 300',
            'secret_name = f"prod/{service}/db"',
            f'PASSWORD_RESET_TEMPLATE = "emails/password_reset.html"',
            f'EXPECTED_SHA256 = "{sha256()}"',
            f'REQUEST_ID = "{uuid()}"',
            'api_key: Optional[str] = None',
            "access_token = self._fetch_access_token_from_metadata_server()",
            f'DB_PASSWORD = "{kmseal_ct()}"',
            f'DB_PASSWORD_REF = "{ref()}"',
            'password = "{password}"',
            'credentials = service_account.Credentials.from_service_account_file("sa.json")',
            f'LOGO = "{png_data_uri(90)}"',
            'token_type_hint = "refresh_token"',
            'private_key_path = Path("~/.ssh/id_ed25519").expanduser()',
            'secret_key_ref = "projects/acme/secrets/django/versions/latest"',
        ], 4)
        head = ['"""' + f'{app}: {R.choice(["API client", "settings", "storage helpers", "deployment tasks"])}.' + '"""',
                "from __future__ import annotations", "", "import getpass", "import os", "from pathlib import Path",
                "from typing import Optional", ""]
        emit(f"services/{app}/{app}/{['aws', 'settings', 'db', 'billing', 'client', 'gh', 'tokens', 'storage', 'vault'][kind]}.py",
             "\n".join(head + body + [""] + negatives), d)
    # tests with test words: not secrets
    for i in range(4):
        app = APPS[i * 3]
        lines = ["import pytest", "", f"from {app}.auth import login, hash_password", "",
                 "", "def test_login_rejects_a_wrong_password(client):",
                 '    assert client.login("alice", "hunter2") is False',
                 "", "def test_hash_roundtrip():",
                 f'    password = "{R.choice(["correct horse battery staple", "s3cr3t", "letmein", "password123", "testpass"])}"',
                 "    assert hash_password(password) != password",
                 "", "@pytest.fixture", "def user():",
                 f'    return {{"username": "bob", "password": "{R.choice(["testpassword", "not-a-real-password", "P@ssw0rd"])}", "token": "test-token"}}',
                 "", "def test_token_header(client):",
                 '    r = client.get("/me", headers={"Authorization": "Bearer test-token"})',
                 "    assert r.status_code == 401",
                 f'    assert r.json()["request_id"] == "{uuid()}"',
                 f'    assert sha256(b"abc") == "{sha256()}"']
        emit(f"services/{app}/tests/test_auth.py", "\n".join(lines))


def t_go():
    for i in range(10):
        app = APPS[(i + 5) % len(APPS)]
        d = Doc("")
        kind = i % 5
        if kind == 0:
            sec = [f'const dsn = "{d.s("url-password", db_url("postgres"))}"']
        elif kind == 1:
            sec = ["var awsCreds = credentials.NewStaticCredentialsProvider(",
                   f'\t"{d.s("aws-access-key-id", aws_id())}",',
                   f'\t"{d.s("aws-secret-access-key", aws_secret())}",', '\t"",', ")"]
        elif kind == 2:
            sec = [f'var signingKey = []byte("{d.s("password-assignment", rs(32))}")']
        elif kind == 3:
            pem = private_key("EC")
            d.block("private-key", pem)
            sec = ["const testKey = `" + pem[0], *pem[1:], "`"]
        else:
            sec = [f'const slackToken = "{d.s("slack-token", slack_token())}"',
                   f'const githubToken = "{d.s("github-token", gh_pat())}"']
        negatives = R.sample([
            "func Login(ctx context.Context, user, password string) (*Session, error) {\n\treturn nil, errNotImplemented\n}",
            'apiKey := os.Getenv("API_KEY")',
            'token, err := src.Token()',
            'password := cfg.Database.Password',
            f'const schemaChecksum = "{sha256()}"',
            'const tokenHeader = "X-Auth-Token"',
            'type Credentials struct {\n\tAccessKeyID     string `json:"access_key_id"`\n\tSecretAccessKey string `json:"secret_access_key"`\n\tSessionToken    string `json:"session_token,omitempty"`\n}',
            f'var buildCommit = "{sha1()}"',
            'secretName := fmt.Sprintf("prod/%s/db", service)',
            'const passwordResetTokenTTL = 30 * time.Minute',
            f'const dbPasswordRef = "{ref()}"',
        ], 3)
        lines = ["package main", "", "import (", '\t"context"', '\t"fmt"', '\t"os"', '\t"time"', ")", "",
                 f"// {app} wires its configuration here.", *sec, "", *negatives, "",
                 "func main() {", f'\tfmt.Println("{app} starting")', "}"]
        emit(f"cmd/{app}/main.go", "\n".join(lines), d)


def t_js():
    for i in range(14):
        app = APPS[(i + 2) % len(APPS)]
        d = Doc("")
        ts = i % 2 == 0
        kind = i % 7
        if kind == 0:
            sec = [f"const stripe = new Stripe('{d.s('stripe-key', stripe_key())}', {{ apiVersion: '2024-06-20' }});"]
        elif kind == 1:
            sec = ["export const config = {", f"  mongoUri: '{d.s('url-password', db_url('mongodb+srv'))}',",
                   "  port: Number(process.env.PORT ?? 3000),", "};"]
        elif kind == 2:
            sec = ["const s3 = new S3Client({", f"  region: '{R.choice(REGIONS)}',", "  credentials: {",
                   f"    accessKeyId: '{d.s('aws-access-key-id', aws_id())}',",
                   f"    secretAccessKey: '{d.s('aws-secret-access-key', aws_secret())}',", "  },", "});"]
        elif kind == 3:
            sec = [f"const token = '{d.s('jwt', jwt())}';",
                   "axios.defaults.headers.common.Authorization = `Bearer ${token}`;"]
        elif kind == 4:
            sec = [f"const apiKey = \"{d.s('password-assignment', api_key_value())}\";"]
        elif kind == 5:
            sec = [f"const octokit = new Octokit({{ auth: '{d.s('github-token', gh_token())}' }});"]
        else:
            sec = ["export const routes = ['/login', '/logout', '/reset-password'];"]
        negatives = R.sample([
            "const apiKey = process.env.API_KEY;",
            "const { password } = req.body;",
            ("interface LoginRequest {\n  username: string;\n  password: string;\n  otp?: string;\n}" if ts else
             "function login(username, password) {\n  return api.post('/login', { username, password });\n}"),
            f"const logo = '{png_data_uri(150)}';",
            "const secretKey = config.get('stripe.secretKey');",
            "export const TOKEN_STORAGE_KEY = 'auth.accessToken';",
            f"const PASSWORD_REGEX = /^(?=.*[a-z])(?=.*[A-Z])(?=.*\\d).{{12,}}$/;",
            f"const requestId = '{uuid()}';",
            "password: { type: String, required: true, select: false },",
            f"const publishableKey = 'pk_live_{rs(24)}';",
            "const token = localStorage.getItem('token');",
            f"// pinned: sha256-{base64.b64encode(rbytes(32)).decode()}",
            "const apiKeyHeaderName = 'x-api-key';",
        ], 3)
        imports = ["import axios from 'axios';", "import Stripe from 'stripe';"] if kind in (0, 3) else ["import express from 'express';"]
        lines = [*imports, "", f"// {app} front-end service", *sec, "", *negatives, "",
                 f"export default function start() {{ console.log('{app} ready'); }}"]
        emit(f"web/src/{app}/{['index', 'config', 'storage', 'api', 'client', 'github', 'routes'][kind]}.{'ts' if ts else 'js'}",
             "\n".join(lines), d)


def t_rust():
    for i in range(8):
        app = APPS[(i + 7) % len(APPS)]
        d = Doc("")
        kind = i % 4
        if kind == 0:
            sec = [f'const API_TOKEN: &str = "{d.s("password-assignment", api_key_value())}";']
        elif kind == 1:
            sec = [f'let url = "{d.s("url-password", db_url("postgres"))}";', "let pool = PgPool::connect(url).await?;"]
        elif kind == 2:
            sec = [f'static WEBHOOK_SECRET: &[u8] = b"{d.s("password-assignment", rs(32, HEX))}";']
        else:
            sec = [f'let client = Client::new("{d.s("stripe-key", stripe_key())}");']
        negatives = R.sample([
            "pub fn connect(host: &str, password: &SecretString) -> Result<Conn, Error> {\n    todo!()\n}",
            'let token = std::env::var("API_TOKEN").context("API_TOKEN is not set")?;',
            "let secret_key_ref = config.secrets.get(\"db\").ok_or(Error::Missing)?;",
            'const TOKEN_HEADER: &str = "x-auth-token";',
            f'const EXPECTED_DIGEST: &str = "{sha256()}";',
            "pub struct Credentials {\n    pub access_key_id: String,\n    pub secret_access_key: SecretString,\n}",
            f'const DB_PASSWORD: &str = "{kmseal_ct()}";',
            'let password = rpassword::prompt_password("Password: ")?;',
            "let api_key_header_name = HeaderName::from_static(\"x-api-key\");",
            f'const TEST_VECTOR_KEY: &str = "{rs(64, HEX)}"; // NIST SP 800-38D test case 16',
        ], 3)
        lines = ["use anyhow::Context;", "use secrecy::SecretString;", "", f"//! {app}: startup.", "",
                 "async fn run() -> anyhow::Result<()> {", *("    " + s for s in sec), "    Ok(())", "}", "", *negatives]
        emit(f"crates/{app}/src/{['auth', 'db', 'webhook', 'billing'][kind]}.rs", "\n".join(lines), d)


def t_java():
    for i in range(8):
        app = APPS[(i + 1) % len(APPS)]
        d = Doc("")
        cls = app.capitalize() + "Config"
        kind = i % 4
        if kind == 0:
            sec = [f'    private static final String DB_PASSWORD = "{d.s("password-assignment", password())}";']
        elif kind == 1:
            sec = ["    AWSCredentials creds = new BasicAWSCredentials(",
                   f'        "{d.s("aws-access-key-id", aws_id())}",',
                   f'        "{d.s("aws-secret-access-key", aws_secret())}");']
        elif kind == 2:
            sec = [f'    private static final String JDBC_URL = "jdbc:mysql://db.internal:3306/{app}?user=app&password={d.s("url-password", url_password())}";']
        else:
            sec = ["    HikariDataSource ds = new HikariDataSource();", f'    ds.setJdbcUrl("jdbc:postgresql://db.internal:5432/{app}");',
                   '    ds.setUsername("app");', f'    ds.setPassword("{d.s("password-assignment", password())}");']
        negatives = R.sample([
            '    private final String password = System.getenv("DB_PASSWORD");',
            "    public void login(String username, char[] password) { }",
            '    @Value("${app.jwt.secret}")\n    private String jwtSecret;',
            "    private static final int PASSWORD_MIN_LENGTH = 12;",
            '    private static final String TOKEN_HEADER = "X-Auth-Token";',
            f'    private static final String SCHEMA_SHA = "{sha1()}";',
            "    String apiKey = secretsClient.getSecretValue(req).secretString();",
        ], 3)
        lines = [f"package com.acme.{app};", "", "import com.amazonaws.auth.*;", "", f"public class {cls} {{", *sec, "",
                 *negatives, "}"]
        emit(f"services/{app}/src/main/java/com/acme/{app}/{cls}.java", "\n".join(lines), d)


def t_markdown():
    for i in range(12):
        app = APPS[i]
        d = Doc("")
        kind = i % 6
        lines = [f"# {app}", "", f"The {app} service. Runbook and local setup.", "", "## Local setup", "",
                 "```sh", "cp .env.example .env", "export DB_PASSWORD=changeme", "docker compose up -d",
                 f"kmseal exec config/{app}.yaml -- cargo run", "```", ""]
        if kind == 0:
            lines += ["## Calling the API", "", "```sh", "curl -s https://api.acme.internal/v1/orders \\",
                      f"  -H 'Authorization: Bearer {d.s('jwt', jwt())}'", "```", ""]
        elif kind == 1:
            lines += ["## Database", "", "Connect with:", "", "```",
                      f"psql '{d.s('url-password', db_url('postgresql', 'app', 'orders-db.prod.acme.internal:5432', app))}'", "```", ""]
        elif kind == 2:
            lines += ["## Deploy key", "", "The CI deploy key (read-only):", "", "```"]
            pem = private_key("OPENSSH")
            d.block("private-key", pem)
            lines += pem + ["```", ""]
        elif kind == 3:
            lines += ["## AWS", "", "Use the example credentials from the AWS docs in tests only:", "",
                      "```ini", "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
                      "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "```", "",
                      f"Our bucket policy allows `arn:aws:iam::{digits(12)}:role/{app}`.", ""]
        elif kind == 4:
            lines += ["## Slack", "", f"Alerts go to #ops through the bot token `{d.s('slack-token', slack_token())}`",
                      "(ask in #platform before rotating it).", ""]
        else:
            lines += ["## Secrets", "", "Never commit a secret. Put a reference in the config instead:", "", "```yaml",
                      f"password: {ref()}", f"api_key: {kmseal_ct()}", "```", "",
                      "Generate a key with `openssl rand -base64 32` and seal it: `kmseal config set config.yaml jwt.secret --generate`.", ""]
        lines += ["## Architecture", "", f"![diagram]({png_data_uri(200)})", "",
                  f"Current release: `{sha1()}` (see CHANGELOG).", "",
                  "| variable | meaning |", "| --- | --- |", "| `DB_PASSWORD` | the database password (from the secret store) |",
                  "| `API_TOKEN` | token for the upstream API; `<your-token>` in examples |", ""]
        emit(f"docs/{app}.md", "\n".join(lines), d)
    emit("docs/SECURITY.md", "\n".join([
        "# Security", "", "Report vulnerabilities to security@acme.internal. Our PGP key:", "", "```",
        "-----BEGIN PGP PUBLIC KEY BLOCK-----", "", *[rs(64, B64) for _ in range(12)], "=" + rs(4, B64),
        "-----END PGP PUBLIC KEY BLOCK-----", "```", "", "Fingerprint: `" + " ".join(rs(4, "0123456789ABCDEF") for _ in range(10)) + "`"]))
    d = Doc("")
    emit("docs/onboarding.md", "\n".join([
        "# Onboarding", "", "1. Ask for access to the password manager.", "2. Clone the repositories:", "",
        "```sh", f"git clone https://{d.s('github-token', gh_token())}@github.com/acme/platform.git", "```", "",
        "3. Log in to the registry:", "", "```sh",
        f"echo '{d.s('password-assignment', password())}' | docker login registry.acme.internal -u ci --password-stdin",
        "```", "", "The default admin password of a fresh install is `admin`; change it at first login."]), d)


def t_keys():
    specs = [("ops/keys/deploy_rsa", "RSA"), ("ops/keys/id_ed25519", "OPENSSH"), ("ops/tls/server.key", ""),
             ("ops/tls/ec.key", "EC"), ("ops/keys/legacy_dsa", "DSA"), ("services/auth/keys/jwt-signing.pem", "RSA")]
    for path, kind in specs:
        d = Doc("")
        pem = private_key(kind)
        d.block("private-key", pem)
        emit(path, "\n".join(pem), d)
    d = Doc("")
    pgp = pgp_private_key()
    d.block("private-key", pgp)
    emit("ops/keys/release-signing.asc", "\n".join(pgp), d)
    # public material: never secret
    emit("ops/tls/server.crt", "\n".join(cert()))
    emit("ops/tls/ca-bundle.pem", "\n".join(cert() + cert()))
    emit("ops/keys/deploy_rsa.pub", ssh_pub())
    emit("ops/keys/jwt-signing.pub.pem", "\n".join(public_key_pem()))
    emit("ops/ssh/authorized_keys", "\n".join(ssh_pub(f"{u}@acme") for u in ["alice", "bob", "carol", "ci"]))
    emit("ops/ssh/known_hosts", "\n".join(
        f"|1|{base64.b64encode(rbytes(20)).decode()}|{base64.b64encode(rbytes(20)).decode()}= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{rs(43, B64)}"
        for _ in range(4)))
    emit("services/auth/jwks.json", json.dumps({"keys": [
        {"kty": "RSA", "use": "sig", "kid": rs(16, HEX), "alg": "RS256", "e": "AQAB", "n": rs(342, B64URL)},
        {"kty": "EC", "use": "sig", "kid": rs(16, HEX), "crv": "P-256", "x": rs(43, B64URL), "y": rs(43, B64URL)}]}, indent=2))


def t_misc():
    # Dockerfiles
    for i in range(4):
        app = APPS[i + 6]
        d = Doc("")
        lines = ["FROM python:3.12-slim@sha256:" + sha256(), "WORKDIR /app", "COPY requirements.txt .",
                 "RUN pip install --no-cache-dir -r requirements.txt", "COPY . .",
                 "ENV PORT=8080 LOG_LEVEL=info"]
        if i % 2 == 0:
            lines.append(f"ENV DB_PASSWORD={d.s('password-assignment', password())}")
        else:
            lines.append("ARG NPM_TOKEN")
            lines.append("RUN --mount=type=secret,id=db_password cat /run/secrets/db_password > /dev/null")
        lines += ["USER 10001", 'CMD ["gunicorn", "-b", "0.0.0.0:8080", "app:app"]']
        emit(f"services/{app}/Dockerfile", "\n".join(lines), d)
    # other tools' ciphertexts: never secret
    emit("ops/ansible/group_vars/prod/vault.yml", "\n".join(ansible_vault()))
    emit("ops/ansible/group_vars/prod/vars.yml", "\n".join([
        "db_user: app", "db_password: \"{{ vault_db_password }}\"", "api_token: \"{{ lookup('env', 'API_TOKEN') }}\"",
        "ssl_cert_path: /etc/ssl/certs/app.pem"]))
    emit("deploy/secrets.enc.yaml", "\n".join([
        "database:", f"    password: {sops_value()}", f"    url: {sops_value()}", "stripe:", f"    secret_key: {sops_value()}",
        "sops:", "    kms:", f"        - arn: arn:aws:kms:eu-west-1:{digits(12)}:key/{uuid()}",
        f"          enc: {base64.b64encode(rbytes(120)).decode()}", "    lastmodified: \"2026-10-02T09:12:44Z\"",
        f"    mac: ENC[AES256_GCM,data:{base64.b64encode(rbytes(32)).decode()},iv:{base64.b64encode(rbytes(32)).decode()},tag:{base64.b64encode(rbytes(16)).decode()},type:str]",
        "    version: 3.9.0"]))
    emit("ops/nginx/htpasswd", "\n".join(f"{u}:$2y$10${rs(53, ALNUM + './')}" for u in ["admin", "grafana", "ci"]))
    # kmseal-encrypted values and references in an unsealed file (a kmseal exec config)
    emit("deploy/exec/prod.yaml", "\n".join([
        "# values resolved by `kmseal exec` at start-up", f"DB_PASSWORD: {ref()}", f"API_TOKEN: {ref()}",
        f"STRIPE_SECRET_KEY: {kmseal_ct()}", f"SLACK_BOT_TOKEN: \"{kmseal_ct()}\"",
        f"KMSEAL_KEY: aws-kms://arn:aws:kms:eu-west-1:{digits(12)}:key/{uuid()}", "LOG_LEVEL: info"]))
    # a CSS file with an inline image, and an HTML page with an integrity hash
    emit("web/src/styles/app.css", "\n".join([
        ".logo {", f"  background-image: url({png_data_uri(300)});", "  width: 120px;", "}",
        ".password-strength { color: #2f855a; }"]))
    emit("web/index.html", "\n".join([
        "<!doctype html>", "<html>", "<head>",
        f'  <script src="https://cdn.acme.internal/app.js" integrity="sha384-{base64.b64encode(rbytes(48)).decode()}" crossorigin="anonymous"></script>',
        '  <meta name="csrf-token" content="{{ csrf_token }}">', "</head>",
        '<body><form><input type="password" name="password" autocomplete="current-password"></form></body>', "</html>"]))
    # a CHANGELOG and a migration: long identifiers and hashes
    emit("services/orders/migrations/0042_add_password_reset_tokens.sql", "\n".join([
        "CREATE TABLE password_reset_tokens (", "  token_hash bytea PRIMARY KEY,", "  user_id uuid NOT NULL,",
        "  expires_at timestamptz NOT NULL", ");",
        f"INSERT INTO api_keys (id, key_prefix, key_sha256) VALUES ('{uuid()}', 'ak_live', '{sha256()}');"]))
    d = Doc("")
    emit("services/orders/migrations/0007_seed_admin.sql", "\n".join([
        "-- seed the first admin (rotate after the first login!)",
        f"CREATE ROLE reporting LOGIN PASSWORD '{d.s('password-assignment', password())}';",
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO reporting;"]), d)


# A token a partial policy (`--encrypt '*password'`) left in plaintext in a sealed document:
# drawn from its own generator so the sealed files need no remaking when the rest changes.
_S = random.Random(20261203)
PARTIAL_TOKEN = "ghp_" + "".join(_S.choice(ALNUM) for _ in range(36))
SEALED_PLANTED = {"partial.yaml": [("github-token", PARTIAL_TOKEN)]}
SEALED_INPUTS = [
    ("app.yaml",
     "database:\n  host: db.internal\n  user: app\n  password: Xk9-q2Lm7pW4zR8tVb3n\nstripe:\n  secret_key: sk_live_zzplaintextbeforeseal\nlog_level: info\n",
     []),
    ("service.json",
     '{\n  "api": {\n    "base_url": "https://api.acme.internal",\n    "token": "t0k3n-before-sealing-9f2c"\n  },\n  "db_password": "pw-before-sealing-8812"\n}\n',
     []),
    ("worker.toml",
     '[queue]\nurl = "amqp://worker:plain-before-seal-77@mq.internal:5672/"\nprefetch = 10\n\n[smtp]\npassword = "plain-before-seal-smtp-31"\n',
     []),
    ("prod.env",
     "DB_PASSWORD=before-seal-db-4411\nAPI_KEY=before-seal-api-5522\nPORT=8080\n",
     []),
    ("partial.yaml",
     "database:\n  password: before-seal-partial-6633\n  host: db.internal\ngithub_token: " + PARTIAL_TOKEN + "\n",
     ["*password"]),
]


TEMPLATES = [t_env, t_shell, t_app_yaml, t_compose, t_k8s, t_helm, t_workflows, t_toml, t_ini,
             t_properties, t_json, t_lockfiles, t_terraform, t_python, t_go, t_js, t_rust, t_java,
             t_markdown, t_keys, t_misc]




def reseal(kmseal):
    """Re-makes sealed/ from the plaintexts in SEALED_INPUTS with the CLI, under a throwaway key."""
    os.makedirs(SEALED, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        key = os.path.join(tmp, "throwaway.key")
        subprocess.run([kmseal, "-q", "keygen", "-o", key], check=True)
        for name, text, policy in SEALED_INPUTS:
            src = os.path.join(tmp, name)
            with open(src, "w", encoding="utf-8") as f:
                f.write(text)
            args = [kmseal, "-q", "config", "encrypt", "-k", f"local://{key}", src,
                    "-o", os.path.join(SEALED, name)]
            for p in policy:
                args += ["--encrypt", p]
            subprocess.run(args, check=True)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--reseal":
        reseal(sys.argv[2])
    elif len(sys.argv) != 1:
        sys.exit(__doc__)
    for make in TEMPLATES:
        make()
    # The sealed documents, as the CLI wrote them; a plaintext secret that a policy left
    # unencrypted is labelled by the line that holds it.
    for name, _, _ in SEALED_INPUTS:
        with open(os.path.join(SEALED, name), encoding="utf-8") as f:
            text = f.read()
        doc = Doc(f"deploy/sealed/{name}")
        for kind, value in SEALED_PLANTED.get(name, []):
            doc.s(kind, value)
        emit(f"deploy/sealed/{name}", text, doc)

    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    rows, paths = [], set()
    for doc, text in DOCS:
        assert doc.path not in paths, doc.path
        paths.add(doc.path)
        full = os.path.join(OUT, doc.path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        seen = set()
        for start, end, kind in doc.labels(text):
            for ln in range(start, end + 1):
                assert (doc.path, ln) not in seen, f"two secrets on {doc.path}:{ln}"
                seen.add((doc.path, ln))
            rows.append((doc.path, str(start) if start == end else f"{start}-{end}", kind))
    rows.sort(key=lambda r: (r[0], int(r[1].split("-")[0])))
    with open(os.path.join(HERE, "labels.tsv"), "w", encoding="utf-8", newline="\n") as f:
        f.write("# path\tline\tkind   (generated by generate.py; line may be FIRST-LAST)\n")
        for r in rows:
            f.write("\t".join(r) + "\n")
    lines = sum(t.count("\n") for _, t in DOCS)
    print(f"{len(DOCS)} files, {lines} lines, {len(rows)} planted secrets", file=sys.stderr)


if __name__ == "__main__":
    main()
