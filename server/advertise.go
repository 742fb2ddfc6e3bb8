package server

import (
	"net"

	"github.com/cockroachdb/errors"
)

// What peers and clients are told (CockroachDB's --advertise-addr,
// --advertise-sql-addr, --advertise-http-addr): the node records and
// gossip carry the advertised addresses, so a node listening on 0.0.0.0 or
// behind NAT is reached at an address that works. Without advertise flags
// a node advertises what it listens on, which must then be a specific
// address.

// ErrUnspecifiedListenAddr: a node listens on every interface but was not
// told what address to advertise.
var ErrUnspecifiedListenAddr = errors.New("the node listens on an unspecified address and has nothing to advertise")

func unspecifiedHost(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

func joinHostPort(hostOf, portOf string) string {
	host, _, err1 := net.SplitHostPort(hostOf)
	_, port, err2 := net.SplitHostPort(portOf)
	if err1 != nil || err2 != nil {
		return ""
	}
	return net.JoinHostPort(host, port)
}

// validateAdvertise checks the advertise flags, and refuses a listen
// address on every interface (0.0.0.0, ::, ":PORT") with nothing to
// advertise in its place.
func validateAdvertise(cfg Config) error {
	for _, a := range []struct{ flag, v string }{
		{"--advertise-addr", cfg.AdvertiseAddr}, {"--advertise-sql-addr", cfg.AdvertiseSQLAddr},
		{"--advertise-http-addr", cfg.AdvertiseHTTPAddr},
	} {
		if a.v == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			return errors.WithHintf(errors.Newf("invalid %s %q: %v", a.flag, a.v, err),
				"write it as HOST:PORT, the address other machines reach this node at, for example node1.example.com:26357")
		}
		if unspecifiedHost(a.v) {
			return errors.WithHintf(errors.Newf("%s=%s is not an address anyone can reach", a.flag, a.v),
				"advertise this node's own host name or IP address, for example %s=node1.example.com:26357", a.flag)
		}
	}
	for _, a := range []struct{ listen, flag, v, advertise, advFlag string }{
		{"--listen-addr", "--advertise-addr", cfg.ListenAddr, cfg.AdvertiseAddr, "--advertise-addr"},
		{"--gossip-addr", "--advertise-addr", cfg.GossipAddr, cfg.AdvertiseAddr, "--advertise-addr"},
		{"--sql-addr", "--advertise-sql-addr", cfg.SQLAddr, cfg.AdvertiseSQLAddr + cfg.AdvertiseAddr, "--advertise-sql-addr (or --advertise-addr)"},
		{"--http-addr", "--advertise-http-addr", cfg.HTTPAddr, cfg.AdvertiseHTTPAddr + cfg.AdvertiseAddr, "--advertise-http-addr (or --advertise-addr)"},
	} {
		if unspecifiedHost(a.v) && a.advertise == "" {
			return errors.WithHintf(errors.Wrapf(ErrUnspecifiedListenAddr, "%s=%s", a.listen, a.v),
				"other nodes and clients would be told %s, which reaches nothing: pass %s=HOST:PORT with this node's "+
					"own host name or IP address (and list that host in its certificate: `kvnode cert create-node HOST ...`)",
				a.v, a.advFlag)
		}
	}
	return nil
}

// AdvertisedRPCAddr is the address other nodes dial: --advertise-addr, or
// the RPC listener's.
func (s *Server) AdvertisedRPCAddr() string {
	if s.cfg.AdvertiseAddr != "" {
		return s.cfg.AdvertiseAddr
	}
	return s.RPCAddr()
}

// AdvertisedSQLAddr is the SQL address clients are told:
// --advertise-sql-addr, else --advertise-addr's host with the SQL port,
// else the SQL listener's.
func (s *Server) AdvertisedSQLAddr() string {
	switch {
	case s.cfg.AdvertiseSQLAddr != "":
		return s.cfg.AdvertiseSQLAddr
	case s.cfg.AdvertiseAddr != "":
		if a := joinHostPort(s.cfg.AdvertiseAddr, s.SQLAddr()); a != "" {
			return a
		}
	}
	return s.SQLAddr()
}

// AdvertisedHTTPAddr is AdvertisedSQLAddr for HTTP.
func (s *Server) AdvertisedHTTPAddr() string {
	switch {
	case s.cfg.AdvertiseHTTPAddr != "":
		return s.cfg.AdvertiseHTTPAddr
	case s.cfg.AdvertiseAddr != "":
		if a := joinHostPort(s.cfg.AdvertiseAddr, s.HTTPAddr()); a != "" {
			return a
		}
	}
	return s.HTTPAddr()
}

// advertisedGossipAddr is --advertise-addr's host with the gossip port, or
// --gossip-addr.
func (s *Server) advertisedGossipAddr() string {
	if s.cfg.AdvertiseAddr != "" {
		if a := joinHostPort(s.cfg.AdvertiseAddr, s.cfg.GossipAddr); a != "" {
			return a
		}
	}
	return s.cfg.GossipAddr
}

func hasPortZero(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port == "0"
}
