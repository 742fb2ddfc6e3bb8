package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/spf13/cobra"

	"github.com/kvnode/kvnode/security"
)

// newCertCmd is `kvnode cert`: create and list the certificates of secure
// mode (package security does the work).
func newCertCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cert",
		Short: "create and list the certificates of a secure cluster",
		Long: `Create the certificates a secure cluster needs, CockroachDB's layout:

  kvnode cert create-ca     --certs-dir=certs --ca-key=my-safe-directory/ca.key
  kvnode cert create-node   localhost 127.0.0.1 node1.example.com --certs-dir=certs --ca-key=my-safe-directory/ca.key
  kvnode cert create-client root --certs-dir=certs --ca-key=my-safe-directory/ca.key
  kvnode cert list          --certs-dir=certs

Files: ca.crt, node.crt/node.key, client.USER.crt/client.USER.key, and gossip.key
(the cluster's gossip encryption key, made by create-ca or create-gossip-key;
every node needs the same file) (keys mode 0600). Keep the CA key outside the
certificates directory: nodes do not need it.`,
	}
	var o security.Options
	addFlags := func(c *cobra.Command, withCA bool) {
		c.Flags().StringVar(&o.CertsDir, "certs-dir", "", "the certificates directory (ca.crt, node.crt, client.USER.crt)")
		if withCA {
			c.Flags().StringVar(&o.CAKey, "ca-key", "", "the CA's private key (keep it outside --certs-dir)")
			c.Flags().BoolVar(&o.Overwrite, "overwrite", false, "replace existing files")
			c.Flags().DurationVar(&o.Lifetime, "lifetime", 0, "validity of the certificate (default: 10 years for the CA, 5 for the others)")
		}
	}
	created := func(files ...string) {
		for _, f := range files {
			fmt.Println("wrote", f)
		}
	}
	join := func(a, b string) string { return strings.TrimSuffix(a, "/") + "/" + b }
	ca := &cobra.Command{
		Use:   "create-ca --certs-dir=DIR --ca-key=FILE",
		Short: "create the cluster's CA: ca.crt in --certs-dir and its key at --ca-key",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			gk := join(o.CertsDir, security.GossipKeyFile)
			_, statErr := os.Stat(gk)
			if err := security.CreateCA(o); err != nil {
				return err
			}
			created(join(o.CertsDir, security.CACertFile), o.CAKey)
			if os.IsNotExist(statErr) {
				created(gk)
			}
			return nil
		},
	}
	addFlags(ca, true)
	gossipKey := &cobra.Command{
		Use:   "create-gossip-key --certs-dir=DIR",
		Short: "create gossip.key, the cluster's gossip encryption key (create-ca makes one); copy it to every node",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if err := security.CreateGossipKey(o); err != nil {
				return err
			}
			created(join(o.CertsDir, security.GossipKeyFile))
			return nil
		},
	}
	gossipKey.Flags().StringVar(&o.CertsDir, "certs-dir", "", "the certificates directory")
	gossipKey.Flags().BoolVar(&o.Overwrite, "overwrite", false, "replace an existing gossip.key (every node must then get the new file)")
	var step string
	var rotateDir string
	rotate := &cobra.Command{
		Use:   "rotate-gossip-key --certs-dir=DIR --step=add|use|remove",
		Short: "one step of a gossip key rotation in DIR's gossip.key; copy the file to every node and SIGHUP each before the next step",
		Long: `Rotates the cluster's gossip key without a restart, in three steps. After each
step, copy the new gossip.key to every node's certificates directory and send
each node SIGHUP (each logs "reloaded the gossip key"); only then take the
next step:

  add     append a new key: every node accepts it, none sends with it yet
  use     make the new key the one every node sends with (the old one is still accepted)
  remove  drop the old key: a process with only the old key is refused from now on

At every moment every node accepts the key every other node sends with.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			keys, err := security.RotateGossipKey(rotateDir, security.GossipKeyStep(step))
			if err != nil {
				return err
			}
			var accepted []string
			for _, k := range keys.Others {
				accepted = append(accepted, security.Fingerprint(k))
			}
			fmt.Printf("wrote %s: sends with %s, also accepts [%s]\n", join(rotateDir, security.GossipKeyFile),
				security.Fingerprint(keys.Primary), strings.Join(accepted, " "))
			fmt.Println("next: copy it to every node's certificates directory and send each node SIGHUP")
			return nil
		},
	}
	rotate.Flags().StringVar(&rotateDir, "certs-dir", "", "the certificates directory whose gossip.key to change")
	rotate.Flags().StringVar(&step, "step", "", "add, use or remove (in that order, each on every node before the next)")
	node := &cobra.Command{
		Use:   "create-node HOST... --certs-dir=DIR --ca-key=FILE",
		Short: "create node.crt/node.key, valid for every name and address given",
		Args:  cobra.ArbitraryArgs,
		RunE: func(_ *cobra.Command, hosts []string) error {
			if err := security.CreateNode(o, hosts); err != nil {
				return err
			}
			created(join(o.CertsDir, security.NodeCertFile), join(o.CertsDir, security.NodeKeyFile))
			return nil
		},
	}
	addFlags(node, true)
	client := &cobra.Command{
		Use:   "create-client USER --certs-dir=DIR --ca-key=FILE",
		Short: "create client.USER.crt/client.USER.key (CN=USER), for SQL clients and the CLI (root)",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := security.CreateClient(o, args[0]); err != nil {
				return err
			}
			created(join(o.CertsDir, security.ClientCertFile(args[0])), join(o.CertsDir, security.ClientKeyFile(args[0])))
			return nil
		},
	}
	addFlags(client, true)
	list := &cobra.Command{
		Use:   "list --certs-dir=DIR",
		Short: "list the certificates of --certs-dir: usage, subject, SANs, expiry and any problem",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if o.CertsDir == "" {
				return errors.WithHint(errors.New("--certs-dir is required"), "pass the certificates directory, e.g. --certs-dir=certs")
			}
			infos, err := security.List(o.CertsDir, time.Now())
			if err != nil {
				return err
			}
			fmt.Printf("Certificate directory: %s\n", o.CertsDir)
			tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "Usage\tCertificate file\tKey file\tSubject\tSANs\tExpires\tNotes")
			for _, in := range infos {
				exp := ""
				if !in.NotAfter.IsZero() {
					exp = in.NotAfter.UTC().Format("2006/01/02")
				}
				sans := strings.Join(in.SANs, ",")
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", in.Usage, in.File, in.KeyFile, in.Subject, sans, exp, in.Problem)
			}
			return tw.Flush()
		},
	}
	addFlags(list, false)
	cmd.AddCommand(ca, node, client, gossipKey, rotate, list)
	return cmd
}
