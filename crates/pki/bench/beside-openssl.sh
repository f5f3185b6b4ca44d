#!/usr/bin/env bash
# Confianza's PKI beside OpenSSL, in one run, on the same machine: identity certificates
# issued per second, a CRL of 1 000 000 revoked entries (time and peak RSS), OCSP responses
# per second, path validations per second. Prints one Markdown table.
#
#   crates/pki/bench/beside-openssl.sh            # from the workspace root
#
# Environment: CARGO_TARGET_DIR (shared target directory), N_ISSUE, N_OCSP, N_VERIFY_PROCS,
# N_VERIFY_ONE (how many OpenSSL runs of each kind), CRITERION_TIME (seconds per criterion
# measurement), KEEP=1 keeps the scratch directory.
#
# What is compared, and why it is fair (or where it is not):
#
# * Issuance. OpenSSL has no in-process issuing API on the command line, so it is measured as
#   operators use it: one `openssl x509 -new -force_pubkey` process per X25519 identity
#   certificate (X25519 cannot sign a CSR), with the same extensions as Confianza's identity
#   profile, signed by an Ed25519 intermediate. Serials are drawn beforehand, so one process
#   per certificate. `openssl speed ed25519` is printed beside it: the signatures per second
#   of OpenSSL's library, an upper bound for any in-process issuer built on it. Confianza is
#   measured in-process (criterion), template cloned, approval, encoding and signature timed.
# * CRL. `openssl ca -gencrl` on a generated index.txt of 1 000 000 revoked entries with
#   reasons, Ed25519 CA, CRL number and AKI; `/usr/bin/time -v` gives wall time and peak RSS.
#   Confianza: the one-shot bench binary building the same number of entries with reasons,
#   CRL number, AKI and issuing distribution point, under the same `/usr/bin/time -v` (its
#   RSS includes the generated input list), plus the criterion figure for the build alone.
# * OCSP. `openssl ocsp -index -reqin` signs one response per process (Ed25519 delegated
#   signer, one certificate, nonce), reading a small index. Confianza: criterion, one request
#   parsed, status looked up, response encoded and signed per iteration (Ed25519 delegated
#   signer, nonce).
# * Path validation. `openssl verify` of a 3-certificate Ed25519 chain (root trusted,
#   intermediate untrusted, X25519 leaf), both one process per verification and many leaves
#   in one process (start-up amortised; each leaf is read and parsed). Confianza: criterion,
#   3-certificate Ed25519 chain, with and without parsing the leaf.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root_dir="$(cd "$here/../../.." && pwd)"
: "${CARGO_TARGET_DIR:=$root_dir/target}"
export CARGO_TARGET_DIR
N_ISSUE="${N_ISSUE:-300}"
N_OCSP="${N_OCSP:-300}"
N_VERIFY_PROCS="${N_VERIFY_PROCS:-300}"
N_VERIFY_ONE="${N_VERIFY_ONE:-5000}"
CRITERION_TIME="${CRITERION_TIME:-4}"
CRL_ENTRIES=1000000

for tool in openssl python3 /usr/bin/time cargo; do
    command -v "$tool" >/dev/null || { echo "beside-openssl: $tool is needed" >&2; exit 1; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/confianza-beside-openssl.XXXXXX")"
if [[ "${KEEP:-0}" != 1 ]]; then
    trap 'rm -rf "$work"' EXIT
fi
cd "$work"

now() { date +%s.%N; }
# rate N START END -> "R /s (U µs each)"
rate() { python3 -c "import sys; n,a,b=int(sys.argv[1]),float(sys.argv[2]),float(sys.argv[3]); d=b-a; print(f'{n/d:,.0f} /s ({d/n*1e6:,.0f} µs each)'.replace(',', ' '))" "$@"; }
# field NAME FILE: a value of /usr/bin/time -v
elapsed_of() { python3 - "$1" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text).group(1)
secs = 0.0
for part in wall.split(":"):
    secs = secs * 60 + float(part)
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
print(f"{secs:.2f} s, peak RSS {rss / 1024:.0f} MB")
EOF
}

echo "== $(date -u '+%Y-%m-%d %H:%M:%S UTC'); load: $(uptime | sed 's/.*load average: //'); $(nproc) cores; $(openssl version)" >&2

# --- OpenSSL: a CA like Confianza's (Ed25519 root, Ed25519 intermediate, OCSP signer) ---
q() { openssl "$@" >/dev/null 2>&1; }
q genpkey -algorithm ED25519 -out root.key
q req -x509 -new -key root.key -subj "/O=Bench/CN=Bench Root CA" -days 3650 -out root.pem \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
q genpkey -algorithm ED25519 -out int.key
q req -new -key int.key -subj "/O=Bench/CN=Bench Issuing CA" -out int.csr
printf '%s\n' "basicConstraints=critical,CA:TRUE,pathlen:0" "keyUsage=critical,keyCertSign,cRLSign" \
    "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" > int.ext
q x509 -req -in int.csr -CA root.pem -CAkey root.key -set_serial 0x4101 -days 1825 -extfile int.ext -out int.pem
q genpkey -algorithm ED25519 -out ocsp.key
q req -new -key ocsp.key -subj "/CN=Bench OCSP Responder" -out ocsp.csr
printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=OCSPSigning" "noCheck=ignored" > ocsp.ext
q x509 -req -in ocsp.csr -CA int.pem -CAkey int.key -set_serial 0x4102 -days 30 -extfile ocsp.ext -out ocsp.pem
q genpkey -algorithm X25519 -out id.key
q pkey -in id.key -pubout -out id.pub
cat > leaf.ext <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,keyAgreement
extendedKeyUsage=1.2.840.113556.1.8000.2554.35196.38532.14706.20308.35525.16036227.4689682.1.1
subjectAltName=email:alice@example.org
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
crlDistributionPoints=URI:http://127.0.0.1:8443/crl
authorityInfoAccess=OCSP;URI:http://127.0.0.1:8443/ocsp,caIssuers;URI:http://127.0.0.1:8443/ca/intermediate.crt
EOF
python3 -c "
import secrets
for _ in range($N_ISSUE):
    print('%032X' % (secrets.randbits(126) | (1 << 126)))" > serials.txt

echo "OpenSSL: issuing $N_ISSUE identity certificates, one process each" >&2
mkdir leaves
start=$(now)
i=0
while read -r serial; do
    i=$((i + 1))
    openssl x509 -new -force_pubkey id.pub -subj "/CN=alice@example.org" -CA int.pem -CAkey int.key \
        -set_serial "0x$serial" -days 365 -extfile leaf.ext -out "leaves/$i.pem" 2>/dev/null
done < serials.txt
end=$(now)
ossl_issue="$(rate "$N_ISSUE" "$start" "$end")"
ossl_sign="$(openssl speed -seconds 3 ed25519 2>/dev/null | awk '/bits EdDSA \(Ed25519\)/ {print $(NF-1); exit}')"
ossl_sign="${ossl_sign%.*}"
[[ -n "$ossl_sign" ]] || ossl_sign="?"

echo "OpenSSL: a CRL of $CRL_ENTRIES revoked entries (openssl ca -gencrl)" >&2
python3 - "$CRL_ENTRIES" <<'EOF'
import secrets, sys
n = int(sys.argv[1])
reasons = ["unspecified", "keyCompromise", "affiliationChanged", "superseded", "cessationOfOperation"]
with open("index.txt", "w") as f:
    for i in range(n):
        serial = secrets.randbits(126) | (1 << 126)
        f.write("R\t271231235959Z\t26%02d%02d%02d%02d%02dZ,%s\t%032X\tunknown\t/CN=user%d\n" % (
            1 + i % 12, 1 + i % 28, i % 24, i % 60, (i // 60) % 60, reasons[i % 5], serial, i))
EOF
echo 01 > crlnumber
cat > ca.cnf <<'EOF'
[ ca ]
default_ca = issuing
[ issuing ]
dir = .
database = index.txt
crlnumber = crlnumber
certificate = int.pem
private_key = int.key
default_md = default
default_crl_days = 7
crl_extensions = crl_ext
[ crl_ext ]
authorityKeyIdentifier = keyid
EOF
/usr/bin/time -v openssl ca -config ca.cnf -gencrl -out big.crl 2> ossl-crl.time >/dev/null
ossl_crl="$(elapsed_of ossl-crl.time)"
ossl_crl_size=$(stat -c %s big.crl)

echo "OpenSSL: $N_OCSP OCSP responses, one process each" >&2
serial1=$(openssl x509 -in leaves/1.pem -noout -serial | cut -d= -f2)
printf 'V\t271231235959Z\t\t%s\tunknown\t/CN=alice@example.org\n' "$serial1" > ocsp-index.txt
q ocsp -issuer int.pem -cert leaves/1.pem -reqout req.der
start=$(now)
for _ in $(seq 1 "$N_OCSP"); do
    openssl ocsp -index ocsp-index.txt -rsigner ocsp.pem -rkey ocsp.key -CA int.pem -reqin req.der \
        -respout resp.der >/dev/null 2>&1
done
end=$(now)
ossl_ocsp="$(rate "$N_OCSP" "$start" "$end")"
openssl ocsp -respin resp.der -no_nonce -issuer int.pem -CAfile root.pem -verify_other int.pem -cert leaves/1.pem \
    2>/dev/null | grep -q ': good' || { echo "beside-openssl: OpenSSL's OCSP response does not check" >&2; exit 1; }

echo "OpenSSL: path validation of a 3-certificate Ed25519 chain" >&2
start=$(now)
for _ in $(seq 1 "$N_VERIFY_PROCS"); do
    openssl verify -CAfile root.pem -untrusted int.pem leaves/1.pem >/dev/null
done
end=$(now)
ossl_verify_procs="$(rate "$N_VERIFY_PROCS" "$start" "$end")"
args=()
for _ in $(seq 1 "$N_VERIFY_ONE"); do args+=(leaves/1.pem); done
start=$(now)
openssl verify -CAfile root.pem -untrusted int.pem "${args[@]}" | grep -c ': OK' > verified.txt
end=$(now)
[[ "$(cat verified.txt)" == "$N_VERIFY_ONE" ]] || { echo "beside-openssl: openssl verify failed" >&2; exit 1; }
ossl_verify_one="$(rate "$N_VERIFY_ONE" "$start" "$end")"

# --- Confianza ---
echo "Confianza: building the benches (release)" >&2
cd "$root_dir"
issue_bin="$(cargo bench -p confianza-pki --bench issue --no-run --message-format=json 2>/dev/null \
    | python3 -c "
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get('reason') == 'compiler-artifact' and m.get('target', {}).get('name') == 'issue' and m.get('executable'):
        print(m['executable'])")"
[[ -x "$issue_bin" ]] || { echo "beside-openssl: cannot find the issue bench binary" >&2; exit 1; }
echo "Confianza: criterion (issue, ocsp, path)" >&2
cargo bench -p confianza-pki --bench issue --bench ocsp --bench path -- \
    --warm-up-time 1 --measurement-time "$CRITERION_TIME" > "$work/criterion.txt" 2>&1
echo "Confianza: a CRL of $CRL_ENTRIES revoked entries, one shot" >&2
CONFIANZA_BENCH_ONESHOT=crl1m /usr/bin/time -v "$issue_bin" > "$work/ours-crl.out" 2> "$work/ours-crl.time"
ours_crl="$(elapsed_of "$work/ours-crl.time")"
ours_crl_inner="$(sed -n 's/.* bytes in \([0-9.]*\) s/\1 s/p' "$work/ours-crl.out")"
ours_crl_size="$(sed -n 's/.*: \([0-9]*\) bytes in.*/\1/p' "$work/ours-crl.out")"

crit() { # crit GROUP/NAME -> "R /s (U µs each)" from criterion's estimates
    python3 - "$CARGO_TARGET_DIR/criterion/$1/new/estimates.json" <<'EOF'
import json, sys
ns = json.load(open(sys.argv[1]))["mean"]["point_estimate"]
if ns >= 1e8:
    print(f"{ns / 1e9:.2f} s")
else:
    print(f"{1e9 / ns:,.0f} /s ({ns / 1e3:,.1f} µs each)".replace(",", " "))
EOF
}

mb() { python3 -c "import sys; print(f'{int(sys.argv[1]) / 1e6:.1f} MB')" "$1"; }

cat <<EOF

| what | Confianza | OpenSSL $(openssl version | awk '{print $2}') |
| --- | --- | --- |
| X25519 identity certificates issued, Ed25519 intermediate | $(crit issue_identity/ed25519) in-process | $ossl_issue, \`openssl x509 -new\` one process per certificate; library bound: $ossl_sign Ed25519 signatures/s (\`openssl speed ed25519\`) |
| the same, P-256 intermediate | $(crit issue_identity/p256) | — |
| CRL of 1 000 000 revoked entries, Ed25519 CA | $ours_crl (one shot, input list included; build ${ours_crl_inner}); criterion $(crit crl/build_1000000); $(mb "$ours_crl_size") | $ossl_crl, \`openssl ca -gencrl\`; $(mb "$ossl_crl_size") PEM |
| OCSP responses, Ed25519 delegated signer, 1 certificate + nonce | $(crit ocsp/respond_ed25519) | $ossl_ocsp, \`openssl ocsp -index -reqin\` one process per response |
| path validation, 3 Ed25519 certificates | $(crit path_validation/ed25519_3_certs); leaf parsed each time: $(crit path_validation/ed25519_3_certs_including_parse) | one \`openssl verify\` per chain: $ossl_verify_procs; $N_VERIFY_ONE leaves in one process: $ossl_verify_one |
| path validation, 3 P-256 certificates | $(crit path_validation/p256_3_certs) | — |
EOF
echo "== done $(date -u '+%H:%M:%S UTC'); load: $(uptime | sed 's/.*load average: //')" >&2
