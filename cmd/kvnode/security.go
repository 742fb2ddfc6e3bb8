package main

import (
	"context"
	"crypto/tls"

	"github.com/cockroachdb/errors"
	"github.com/spf13/cobra"

	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/security"
)

// securityFlags are --certs-dir and --insecure, taken by start,
// start-single-node, init and every node command.
type securityFlags struct {
	certsDir string
	insecure bool
	// tls is the CLI's client configuration (client.root.crt), loaded by
	// load for the commands that call a node; nil in insecure mode.
	tls *tls.Config
}

func addSecurityFlags(cmd *cobra.Command, f *securityFlags) {
	cmd.Flags().StringVar(&f.certsDir, "certs-dir", "", "secure mode: the certificates directory (ca.crt, node.crt/node.key, client.root.crt/client.root.key; see `kvnode cert`)")
	cmd.Flags().BoolVar(&f.insecure, "insecure", false, "run without TLS or authentication: anyone who reaches the ports controls the cluster")
}

// check refuses neither and both, naming both flags.
func (f *securityFlags) check(cmd *cobra.Command) error {
	switch {
	case f.insecure && f.certsDir != "":
		return errors.WithHintf(errors.Newf("%s: --insecure and --certs-dir contradict each other", cmd.CommandPath()),
			"pass --certs-dir=DIR for a secure cluster, or --insecure alone for one without security")
	case !f.insecure && f.certsDir == "":
		return errors.WithHintf(errors.Newf("%s needs --certs-dir or --insecure", cmd.CommandPath()),
			"pass --certs-dir=DIR (certificates from `kvnode cert create-ca`, `create-node` and `create-client root`) for a secure cluster, "+
				"or --insecure for one without TLS or authentication")
	}
	return nil
}

// loadClient checks the flags and, in secure mode, loads client.root.crt.
func (f *securityFlags) loadClient(cmd *cobra.Command) error {
	if err := f.check(cmd); err != nil {
		return err
	}
	if f.insecure {
		return nil
	}
	cfg, err := security.LoadClientTLS(f.certsDir, security.RootUser)
	if err != nil {
		return errors.Wrapf(err, "--certs-dir=%s", f.certsDir)
	}
	f.tls = cfg
	return nil
}

// context is a background context whose node calls use the CLI's TLS
// configuration (plaintext in insecure mode).
func (f *securityFlags) context() context.Context {
	if f.tls == nil {
		return context.Background()
	}
	return nodeapi.WithTLS(context.Background(), f.tls)
}
