# shellcheck shell=bash
# Sourced by the benchmark scripts: free_port VAR picks a loopback port for a
# node and stores it in VAR.
#
# Ports come from below the kernel's ephemeral range
# (/proc/sys/net/ipv4/ip_local_port_range), as roachtest/cluster/ports.go
# chooses them: a node killed and started again binds the same ports, and any
# outgoing connection in between may be given a port of that range as its
# source port. Below it only a process that binds that very port can take it.
# A port is free when neither TCP nor UDP uses it (gossip takes both) and this
# script has not handed it out already.

FREE_PORTS_USED=" "
FREE_PORTS_LOW=10000
FREE_PORTS_HIGH=32768 # one past the highest port drawn
if read -r _lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null && ((_lo > FREE_PORTS_LOW + 1000)); then
  FREE_PORTS_HIGH=$_lo
fi

port_in_use() { # port_in_use PORT
  if command -v ss >/dev/null; then
    [[ -n $(ss -Htuan "( sport = :$1 )" 2>/dev/null) ]]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

free_port() { # free_port VAR
  local p i
  for ((i = 0; i < 500; i++)); do
    p=$((FREE_PORTS_LOW + (RANDOM * 32768 + RANDOM) % (FREE_PORTS_HIGH - FREE_PORTS_LOW)))
    [[ $FREE_PORTS_USED == *" $p "* ]] && continue
    port_in_use "$p" && continue
    FREE_PORTS_USED+="$p "
    printf -v "$1" '%s' "$p"
    return 0
  done
  echo "found no free loopback port in [$FREE_PORTS_LOW, $FREE_PORTS_HIGH) after 500 tries: stop the processes holding them" >&2
  exit 1
}
