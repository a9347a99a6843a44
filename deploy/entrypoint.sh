#!/bin/sh
# lanenet-entrypoint: the one image's roles.
#
#   node [ARGS]     run a validator (default). Its identity comes from, in this order:
#                   LANENET_CONFIG=PATH        a config.toml (genesis and key paths inside it)
#                   LANENET_NODE_INDEX=I       $LANENET_TESTNET_DIR/nodeI/config.toml; the value
#                                              "hostname" takes I from the host name's trailing
#                                              digits (a StatefulSet pod validator-2 is node 2)
#                   LANENET_CONFIG_TOML, LANENET_GENESIS_JSON, LANENET_VALIDATOR_KEY
#                                              the three files' contents (e.g. from a Secret)
#   init            generate keys, genesis and configs into $LANENET_TESTNET_DIR unless there
#                   already is a testnet (LANENET_VALIDATORS, LANENET_HOST_TEMPLATE, LANENET_CHAIN_ID)
#   spam [ARGS]     `lanenet spam` against the validators by name, with the dev accounts of
#                   $LANENET_TESTNET_DIR (LANENET_SPAM_TPS, LANENET_SPAM_DURATION, LANENET_SPAM_ACCOUNTS)
#   healthcheck     the container HEALTHCHECK: a node's /healthz and /readyz (set
#                   LANENET_HEALTH_PATHS=/healthz for liveness only); healthy in other roles
#   anything else   runs `lanenet ARGS` (e.g. `testnet status`, `status http://node0:8545`)
set -eu

TESTNET_DIR=${LANENET_TESTNET_DIR:-/testnet}
HOME_DIR=${LANENET_HOME:-/var/lib/lanenet}
HOST_TEMPLATE=${LANENET_HOST_TEMPLATE:-node\{i\}}
VALIDATORS=${LANENET_VALIDATORS:-4}
# Written by the node role: the config the health check reads its metrics port from.
ROLE_FILE=${TMPDIR:-/tmp}/lanenet-node-config

die() {
    echo "lanenet-entrypoint: $*" >&2
    exit 2
}

need_file() { # need_file PATH WHAT
    [ -e "$1" ] || die "$2 not found at $1"
    [ -r "$1" ] || die "$2 at $1 is not readable by uid $(id -u)"
}

is_count() {
    case $1 in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac
}

config_from_env() {
    run_dir=$HOME_DIR/run
    mkdir -p "$run_dir/node"
    printf '%s\n' "$LANENET_CONFIG_TOML" >"$run_dir/node/config.toml"
    printf '%s\n' "$LANENET_GENESIS_JSON" >"$run_dir/genesis.json"
    (umask 077 && printf '%s\n' "$LANENET_VALIDATOR_KEY" >"$run_dir/node/validator_key.json")
    echo "$run_dir/node/config.toml"
}

node_config() {
    if [ -n "${LANENET_CONFIG:-}" ]; then
        echo "$LANENET_CONFIG"
        return
    fi
    if [ -n "${LANENET_CONFIG_TOML:-}" ]; then
        [ -n "${LANENET_GENESIS_JSON:-}" ] || die "LANENET_CONFIG_TOML is set but LANENET_GENESIS_JSON is not"
        [ -n "${LANENET_VALIDATOR_KEY:-}" ] || die "LANENET_CONFIG_TOML is set but LANENET_VALIDATOR_KEY is not"
        config_from_env
        return
    fi
    index=${LANENET_NODE_INDEX:-}
    if [ "$index" = hostname ]; then
        host=$(hostname)
        index=$(echo "$host" | sed -n 's/.*[^0-9]\([0-9][0-9]*\)$/\1/p')
        [ -n "$index" ] || die "LANENET_NODE_INDEX=hostname, but host name '$host' does not end in digits"
    fi
    [ -n "$index" ] || die "no node identity: set LANENET_NODE_INDEX (0..N-1, with the testnet \
mounted at $TESTNET_DIR), LANENET_CONFIG (a config.toml), or LANENET_CONFIG_TOML, \
LANENET_GENESIS_JSON and LANENET_VALIDATOR_KEY"
    is_count "$index" || die "LANENET_NODE_INDEX must be a number or 'hostname', got '$index'"
    need_file "$TESTNET_DIR/genesis.json" "the shared genesis (run the init role, or mount it)"
    echo "$TESTNET_DIR/node$index/config.toml"
}

run_node() {
    config=$(node_config)
    need_file "$config" "the node config"
    dir=$(dirname "$config")
    genesis=$(sed -n 's/^genesis *= *"\(.*\)"/\1/p' "$config")
    key=$(sed -n 's/^key *= *"\(.*\)"/\1/p' "$config")
    case $genesis in /*) ;; *) genesis=$dir/$genesis ;; esac
    case $key in /*) ;; *) key=$dir/$key ;; esac
    [ -n "$genesis" ] && need_file "$genesis" "the genesis named in $config"
    [ -n "$key" ] && need_file "$key" "the validator key named in $config"
    echo "$config" >"$ROLE_FILE"
    exec lanenet node run --config "$config" "$@"
}

run_init() {
    is_count "$VALIDATORS" && [ "$VALIDATORS" -ge 1 ] \
        || die "LANENET_VALIDATORS must be a positive number, got '$VALIDATORS'"
    [ -w "$TESTNET_DIR" ] || die "$TESTNET_DIR is not writable by uid $(id -u) (mount a volume there)"
    set -- --dir "$TESTNET_DIR" --validators "$VALIDATORS" --if-missing \
        --host-template "$HOST_TEMPLATE" --listen-host 0.0.0.0 --same-ports \
        --data-dir "$HOME_DIR/data" --archive-dir "$HOME_DIR/archive" "$@"
    [ -n "${LANENET_CHAIN_ID:-}" ] && set -- "$@" --chain-id "$LANENET_CHAIN_ID"
    exec lanenet testnet generate "$@"
}

run_spam() {
    need_file "$TESTNET_DIR/accounts.json" "the dev accounts (the init role writes them)"
    is_count "$VALIDATORS" || die "LANENET_VALIDATORS must be a number, got '$VALIDATORS'"
    rpc=""
    grpc=""
    i=0
    while [ "$i" -lt "$VALIDATORS" ]; do
        host=$(echo "$HOST_TEMPLATE" | sed "s/{i}/$i/g")
        rpc="$rpc${rpc:+,}http://$host:8545"
        grpc="$grpc${grpc:+,}$host:9090"
        i=$((i + 1))
    done
    set -- --rpc "$rpc" --grpc "$grpc" --keys "$TESTNET_DIR/accounts.json" \
        --tps "${LANENET_SPAM_TPS:-200}" --duration "${LANENET_SPAM_DURATION:-30}" "$@"
    [ -n "${LANENET_SPAM_ACCOUNTS:-}" ] && set -- "$@" --accounts "$LANENET_SPAM_ACCOUNTS"
    exec lanenet spam "$@"
}

run_healthcheck() {
    [ -r "$ROLE_FILE" ] || exit 0
    exec python3 - "$(cat "$ROLE_FILE")" ${LANENET_HEALTH_PATHS:-/healthz /readyz} <<'PY'
import sys, tomllib, urllib.error, urllib.request

with open(sys.argv[1], "rb") as f:
    doc = tomllib.load(f)
host = doc.get("listen_host", "127.0.0.1")
host = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
for path in sys.argv[2:]:
    url = f"http://{host}:{doc.get('metrics_port', 26660)}{path}"
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:  # 503: the body says why
        print(f"{url}: {exc.code} {exc.read().decode(errors='replace')}")
        sys.exit(1)
    except OSError as exc:
        print(f"{url}: {exc}")
        sys.exit(1)
PY
}

role=${1:-node}
[ $# -gt 0 ] && shift
case $role in
node) run_node "$@" ;;
init) run_init "$@" ;;
spam) run_spam "$@" ;;
healthcheck) run_healthcheck ;;
*) exec lanenet "$role" "$@" ;;
esac
