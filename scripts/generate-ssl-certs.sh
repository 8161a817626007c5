#!/usr/bin/env bash
# Creates a CA and a server certificate (optionally client certificates) for a citus-cluster
# release, with subject alternative names for every name the chart gives its services and
# pods. See docs/SSL_SETUP.md.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/generate-ssl-certs.sh [options]

  --cluster NAME          cluster name (chart clusterName)                 [citusdemo]
  --namespace NS          Kubernetes namespace                             [default]
  --out DIR               output directory                                 [certs]
  --days N                validity of every certificate made, in days      [1095]
  --cluster-domain DOMAIN cluster DNS domain                               [cluster.local]
  --groups N              number of worker groups: names for groups 0..N   [2]
  --headless-suffix SUF   headless service of group G is <cluster>-G<SUF>  [-hl]
  --client USER...        also make client-USER.crt/.key (CN=USER), for clientcert/cert auth
  --extra-san NAME|IP...  more subject alternative names (DNS names or IP addresses)
  --reuse-ca              sign with the existing ca.crt/ca.key in DIR instead of a new CA
  --force                 overwrite existing files
  -h, --help              this text

Writes DIR/ca.crt, DIR/ca.key, DIR/server.crt, DIR/server.key (keys 0600), verifies them,
lists the SANs and prints the kubectl command that creates the chart's secret.
EOF
}

die() { printf 'generate-ssl-certs: error: %s\n' "$*" >&2; exit 1; }
usage_error() { printf 'generate-ssl-certs: error: %s\n' "$*" >&2; printf "run '%s --help' for the options\n" "$0" >&2; exit 2; }

cluster=citusdemo namespace=default out=certs days=1095 domain=cluster.local groups=2
headless_suffix=-hl force=false reuse_ca=false
clients=() extra_sans=()

# Options taking one value accept "--opt VALUE" and "--opt=VALUE"; --client and --extra-san
# take every following argument up to the next option, and may be repeated.
need_value() { if [ $# -lt 2 ] || [ -z "$2" ]; then usage_error "$1 needs a value"; fi; }
while [ $# -gt 0 ]; do
    opt=$1
    case $opt in
        --*=*) set -- "${opt%%=*}" "${opt#*=}" "${@:2}"; continue ;;
    esac
    case $opt in
        --cluster) need_value "$@"; cluster=$2; shift 2 ;;
        --namespace) need_value "$@"; namespace=$2; shift 2 ;;
        --out) need_value "$@"; out=$2; shift 2 ;;
        --days) need_value "$@"; days=$2; shift 2 ;;
        --cluster-domain) need_value "$@"; domain=$2; shift 2 ;;
        --groups) need_value "$@"; groups=$2; shift 2 ;;
        --headless-suffix) [ $# -ge 2 ] || usage_error "--headless-suffix needs a value"
            headless_suffix=$2; shift 2 ;;
        --client|--extra-san)
            shift; n=0
            while [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; do
                if [ "$opt" = --client ]; then clients+=("$1"); else extra_sans+=("$1"); fi
                shift; n=$((n + 1))
            done
            [ $n -gt 0 ] || usage_error "$opt needs at least one value" ;;
        --reuse-ca) reuse_ca=true; shift ;;
        --force) force=true; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage_error "unknown argument '$opt'" ;;
    esac
done

# ---- validation: every problem is reported, then we stop ------------------------------
problems=()
problem() { problems+=("$*"); }
dns_label_re='^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'
is_dns_label() { [ ${#1} -le 63 ] && [[ $1 =~ $dns_label_re ]]; }
is_dns_name() {
    local label rest=$1
    [ -n "$rest" ] && [ ${#rest} -le 253 ] || return 1
    while :; do
        label=${rest%%.*}
        is_dns_label "$label" || return 1
        [ "$label" = "$rest" ] && return 0
        rest=${rest#*.}
    done
}
is_ipv4() {
    local IFS=. octets o
    [[ $1 =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || return 1
    read -r -a octets <<<"$1"
    for o in "${octets[@]}"; do [ $((10#$o)) -le 255 ] || return 1; done
}
is_ipv6() { [[ $1 == *:* ]] && [[ $1 =~ ^[0-9a-fA-F:.]+$ ]]; }
is_count() { [[ $1 =~ ^[0-9]+$ ]] && [ ${#1} -le 6 ]; }

is_dns_label "$cluster" ||
    problem "--cluster: '$cluster' is not a DNS label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)"
is_dns_label "$namespace" ||
    problem "--namespace: '$namespace' is not a DNS label (lowercase letters, digits and '-', at most 63 characters)"
is_dns_name "$domain" ||
    problem "--cluster-domain: '$domain' is not a DNS name such as cluster.local"
if ! is_count "$days" || [ "$days" -lt 1 ]; then
    problem "--days: '$days' is not a whole number of days >= 1"
fi
if ! is_count "$groups" || [ "$groups" -gt 1000 ]; then
    problem "--groups: '$groups' is not a number of worker groups between 0 and 1000"
fi
[ -z "$headless_suffix" ] || [[ $headless_suffix =~ ^[-a-z0-9]*[a-z0-9]$ ]] ||
    problem "--headless-suffix: '$headless_suffix' may hold only lowercase letters, digits and '-', and must not end with '-'"
if is_dns_label "$cluster" && is_count "$groups" &&
    ! is_dns_label "$cluster-$groups$headless_suffix"; then
    problem "--cluster: '$cluster-$groups$headless_suffix' (the longest service name) is longer than 63 characters"
fi
for c in ${clients[@]+"${clients[@]}"}; do
    [[ $c =~ ^[A-Za-z_][A-Za-z0-9_.-]{0,62}$ ]] ||
        problem "--client: '$c' is not a user name this script accepts (letters, digits, '_', '.', '-'; at most 63 characters)"
done
for s in ${extra_sans[@]+"${extra_sans[@]}"}; do
    if is_ipv4 "$s" || is_ipv6 "$s"; then continue; fi
    case $s in
        '*.'*) is_dns_name "${s#\*.}" || problem "--extra-san: '$s' is not a DNS name or IP address" ;;
        *) is_dns_name "$s" || problem "--extra-san: '$s' is not a DNS name (lowercase) or IP address" ;;
    esac
done
command -v openssl >/dev/null || problem "openssl is not installed (needed to make the certificates)"

if [ ${#problems[@]} -gt 0 ]; then
    for p in "${problems[@]}"; do printf 'generate-ssl-certs: error: %s\n' "$p" >&2; done
    exit 2
fi

# ---- output files: refuse to overwrite unless --force --------------------------------
outputs=(server.crt server.key)
$reuse_ca || outputs=(ca.crt ca.key "${outputs[@]}")
for c in ${clients[@]+"${clients[@]}"}; do outputs+=("client-$c.crt" "client-$c.key"); done

if [ -e "$out" ] && [ ! -d "$out" ]; then die "--out: '$out' exists and is not a directory"; fi
if $reuse_ca; then
    for f in ca.crt ca.key; do
        [ -r "$out/$f" ] || die "--reuse-ca: '$out/$f' does not exist or is not readable"
    done
fi
existing=()
for f in "${outputs[@]}"; do [ -e "$out/$f" ] && existing+=("$out/$f"); done
if [ ${#existing[@]} -gt 0 ] && ! $force; then
    die "refusing to overwrite existing files: ${existing[*]} (pass --force to replace them, or --out to write elsewhere)"
fi

# ---- subject alternative names -----------------------------------------------------
# A wildcard covers exactly one left-most label, so "*.<cluster>-*..." forms are not valid;
# every group's services are enumerated, and pods are covered per headless service.
sans=() seen=' '
add_san() {
    case $seen in *" $1 "*) return 0 ;; esac
    seen="$seen$1 "; sans+=("$1")
}
add_service() {   # a Service name in the short and qualified forms clients use
    add_san "DNS:$1"; add_san "DNS:$1.$namespace"; add_san "DNS:$1.$namespace.svc"
    add_san "DNS:$1.$namespace.svc.$domain"
}
add_pods_of() {   # pods behind a headless Service: <pod>.<svc>.<ns>.svc.<domain> and short forms
    add_san "DNS:*.$1.$namespace.svc.$domain"; add_san "DNS:*.$1.$namespace.svc"
    add_san "DNS:*.$1.$namespace"
}
for ((g = 0; g <= groups; g++)); do
    add_service "$cluster-$g"
    if [ -n "$headless_suffix" ]; then add_service "$cluster-$g$headless_suffix"; fi
    add_pods_of "$cluster-$g$headless_suffix"
done
add_service "$cluster-workers"
add_service "$cluster"
add_pods_of "$cluster"
add_san "DNS:localhost"; add_san "IP:127.0.0.1"; add_san "IP:::1"
for s in ${extra_sans[@]+"${extra_sans[@]}"}; do
    if is_ipv4 "$s" || is_ipv6 "$s"; then add_san "IP:$s"; else add_san "DNS:$s"; fi
done
san_line=$(IFS=,; printf '%s' "${sans[*]}")

# ---- make everything in a private temporary directory, check it, then move it in place
mkdir -p "$out"
work=$(mktemp -d "$out/.generate-ssl-certs.XXXXXX")
trap 'rm -rf "$work"' EXIT
umask 077

serial() { printf '0x%s' "$(openssl rand -hex 16)"; }
new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
run_openssl() {   # quiet on success, shows openssl's own words on failure
    local log
    if ! log=$(openssl "$@" 2>&1); then die "openssl $1 failed: $log"; fi
}

if $reuse_ca; then
    cp "$out/ca.crt" "$out/ca.key" "$work/"
    run_openssl x509 -in "$work/ca.crt" -noout
else
    new_key "$work/ca.key"
    run_openssl req -x509 -new -key "$work/ca.key" -sha256 -days "$days" -set_serial "$(serial)" \
        -subj "/O=$cluster/CN=$cluster-ca" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" \
        -out "$work/ca.crt"
fi

sign() {   # sign NAME CN EXTENSIONS: NAME.key + NAME.crt signed by the CA
    local name=$1 cn=$2 ext=$3
    new_key "$work/$name.key"
    run_openssl req -new -key "$work/$name.key" -subj "/O=$cluster/CN=$cn" -out "$work/$name.csr"
    printf '%s\n' "$ext" >"$work/$name.ext"
    run_openssl x509 -req -in "$work/$name.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
        -set_serial "$(serial)" -sha256 -days "$days" -extfile "$work/$name.ext" \
        -out "$work/$name.crt"
    rm -f "$work/$name.csr" "$work/$name.ext"
}
# Members also present server.crt as their client certificate (SSL_CLIENT_CERT), hence
# clientAuth next to serverAuth.
sign server "$cluster" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyAgreement
extendedKeyUsage=serverAuth,clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
subjectAltName=$san_line"
for c in ${clients[@]+"${clients[@]}"}; do
    sign "client-$c" "$c" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyAgreement
extendedKeyUsage=clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid"
done

# Self-check: chain, key/certificate pairs, SANs.
pubkey() { openssl pkey -pubout "$@" 2>/dev/null; }
for f in "${outputs[@]}"; do
    case $f in
        *.crt)
            base=${f%.crt}
            if [ "$base" != ca ]; then
                openssl verify -CAfile "$work/ca.crt" "$work/$f" >/dev/null 2>&1 ||
                    die "self-check: $f does not verify against ca.crt: $(openssl verify -CAfile "$work/ca.crt" "$work/$f" 2>&1 | tail -n 1)"
            fi
            [ "$(pubkey -in "$work/$base.key")" = "$(openssl x509 -in "$work/$f" -noout -pubkey)" ] ||
                die "self-check: $base.key does not match $f"
            ;;
    esac
done
# openssl lists IPv6 addresses expanded, so those are only counted; the rest must appear
# exactly as requested.
listed=$(openssl x509 -in "$work/server.crt" -noout -ext subjectAltName | tail -n +2 | tr -d ' ')
IFS=, read -r -a listed_sans <<<"$listed"
[ ${#listed_sans[@]} -eq ${#sans[@]} ] ||
    die "self-check: server.crt has ${#listed_sans[@]} SANs, expected ${#sans[@]}"
for s in "${sans[@]}"; do
    case $s in IP:*:*) continue ;; esac
    want=${s/#IP:/IPAddress:}
    case ",$listed," in *",$want,"*) ;; *) die "self-check: server.crt lacks SAN $s" ;; esac
done

chmod 0600 "$work"/*.key
chmod 0644 "$work"/*.crt
for f in "${outputs[@]}"; do mv -f "$work/$f" "$out/$f"; done

# ---- report ------------------------------------------------------------------------
printf 'Wrote to %s/:\n' "$out"
for f in "${outputs[@]}"; do printf '  %s\n' "$f"; done
$reuse_ca && printf '  (signed with the existing ca.crt/ca.key)\n'
printf '\nserver.crt: valid until %s, subject alternative names:\n' \
    "$(openssl x509 -in "$out/server.crt" -noout -enddate | cut -d= -f2)"
printf '%s\n' "${sans[@]}" | sed 's/^/  /'
printf '\nChecked: openssl verify -CAfile %s/ca.crt %s/server.crt: OK\n' "$out" "$out"
printf '\nKeep ca.key private and out of the cluster. Create the secret the chart mounts with:\n\n'
printf '  kubectl create secret generic %s-ssl-certs --namespace %s \\\n' "$cluster" "$namespace"
printf '    --from-file=ca.crt=%s/ca.crt \\\n' "$out"
printf '    --from-file=server.crt=%s/server.crt \\\n' "$out"
printf '    --from-file=server.key=%s/server.key\n' "$out"
