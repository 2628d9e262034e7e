#!/bin/sh
# certbot deploy hook: after each renewal on the primary, upload the new pair to the private
# S3 location the Pi fetches its certificate from (`source = "s3"` in pi-failover.toml).
#
# Install on the primary:
#   sudo install -m 0755 certbot-to-s3.sh /etc/letsencrypt/renewal-hooks/deploy/pi-failover.sh
# and set the location (the same bucket and prefix as the Pi's [[tls.certificates]] entry):
#   echo 'PI_FAILOVER_CERT_URL=s3://example-com-certs/tls/www.example.com/' \
#     | sudo tee /etc/default/pi-failover-hook
# Test it once without waiting for a renewal:
#   sudo RENEWED_LINEAGE=/etc/letsencrypt/live/www.example.com \
#     /etc/letsencrypt/renewal-hooks/deploy/pi-failover.sh
#
# Needs the AWS CLI with credentials that may s3:PutObject under that prefix only
# (docs/user-guide.md, "Certificates"). The Pi checks every pair before it serves it, so an
# upload cut short or a wrong file is refused there and its certificate in use is kept.
set -eu

# shellcheck source=/dev/null
[ -r /etc/default/pi-failover-hook ] && . /etc/default/pi-failover-hook
: "${PI_FAILOVER_CERT_URL:?set it in /etc/default/pi-failover-hook, e.g. s3://bucket/tls/www.example.com/}"
: "${RENEWED_LINEAGE:?certbot sets it for deploy hooks: the directory of the renewed certificate}"

case "$PI_FAILOVER_CERT_URL" in
  s3://*/) ;;
  *) echo "PI_FAILOVER_CERT_URL must be s3://bucket/prefix/ ending in /" >&2; exit 2 ;;
esac

# The key first: a Pi fetching between the two uploads sees the old chain with the new key,
# refuses the mismatch, and takes the pair at its next fetch. Server-side encryption at rest;
# never a public ACL.
for file in privkey.pem fullchain.pem; do
  aws s3 cp --only-show-errors --sse AES256 --content-type application/x-pem-file \
    "$RENEWED_LINEAGE/$file" "${PI_FAILOVER_CERT_URL}$file"
done
echo "pi-failover: uploaded the renewed certificate to $PI_FAILOVER_CERT_URL"
