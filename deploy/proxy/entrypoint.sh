#!/bin/sh
# Starts nginx in front of web: renders nginx.conf from the environment, makes a self-signed
# certificate when none is there yet, then runs nginx in the foreground as PID 1 (SIGHUP
# reloads the configuration and the certificate, SIGQUIT stops gracefully).
#
#   UPSTREAM         web's host:port                      (web:8000)
#   RESOLVER         DNS server that resolves UPSTREAM    (127.0.0.11, Docker's)
#   TLS_CERT_FILE    certificate chain, PEM               (/etc/wa-media-proxy/tls/tls.crt)
#   TLS_KEY_FILE     its private key, PEM                 (/etc/wa-media-proxy/tls/tls.key)
#   TLS_SERVER_NAME  name of the self-signed certificate  (localhost)
#
# The self-signed certificate is issued by a CA made for it alone, whose key is discarded: its
# certificate (ca.crt, beside tls.crt) is what a client pins to trust this proxy.
set -eu

UPSTREAM=${UPSTREAM:-web:8000}
RESOLVER=${RESOLVER:-127.0.0.11}
TLS_DIR=/etc/wa-media-proxy/tls
TLS_CERT_FILE=${TLS_CERT_FILE:-$TLS_DIR/tls.crt}
TLS_KEY_FILE=${TLS_KEY_FILE:-$TLS_DIR/tls.key}
TLS_SERVER_NAME=${TLS_SERVER_NAME:-localhost}

for value in "$UPSTREAM" "$RESOLVER" "$TLS_CERT_FILE" "$TLS_KEY_FILE" "$TLS_SERVER_NAME"; do
	case $value in
	*[!A-Za-z0-9./:_-]* | "")
		echo "wa-media-proxy: invalid setting: '$value'" >&2
		exit 2
		;;
	esac
done

self_signed() {
	work=$(mktemp -d)
	case $TLS_SERVER_NAME in
	*[!0-9.]*) name="DNS:$TLS_SERVER_NAME" ;;
	*) name="IP:$TLS_SERVER_NAME" ;;
	esac
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
		-subj "/CN=wa-media-proxy local CA" -keyout "$work/ca.key" -out "$work/ca.crt" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
		2>/dev/null
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-subj "/CN=$TLS_SERVER_NAME" -keyout "$work/tls.key" -out "$work/tls.csr" 2>/dev/null
	printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
		"extendedKeyUsage=serverAuth" "subjectAltName=$name,DNS:localhost,IP:127.0.0.1" \
		>"$work/extensions"
	openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
		-CAcreateserial -days 825 -sha256 -extfile "$work/extensions" -out "$work/tls.crt" \
		2>/dev/null
	cp "$work/ca.crt" "$TLS_DIR/ca.crt"
	cp "$work/tls.key" "$TLS_KEY_FILE"
	cp "$work/tls.crt" "$TLS_CERT_FILE"
	rm -rf "$work"
	echo "wa-media-proxy: made a self-signed certificate for $TLS_SERVER_NAME," \
		"issued by $TLS_DIR/ca.crt" >&2
}

umask 077
if [ ! -s "$TLS_CERT_FILE" ] || [ ! -s "$TLS_KEY_FILE" ]; then
	if [ "$TLS_CERT_FILE" != "$TLS_DIR/tls.crt" ] || [ "$TLS_KEY_FILE" != "$TLS_DIR/tls.key" ]; then
		echo "wa-media-proxy: $TLS_CERT_FILE or $TLS_KEY_FILE is missing or empty" >&2
		exit 2
	fi
	self_signed
fi

sed -e "s|@UPSTREAM@|$UPSTREAM|g" -e "s|@RESOLVER@|$RESOLVER|g" \
	-e "s|@TLS_CERT_FILE@|$TLS_CERT_FILE|g" -e "s|@TLS_KEY_FILE@|$TLS_KEY_FILE|g" \
	/etc/wa-media-proxy/nginx.conf >/tmp/nginx.conf
exec nginx -e stderr -c /tmp/nginx.conf -g "daemon off;"
