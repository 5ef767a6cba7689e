package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/slipway-dev/slipway/internal/app"
	"github.com/slipway-dev/slipway/internal/atomicfile"
	"github.com/slipway-dev/slipway/internal/backup"
	"github.com/slipway-dev/slipway/internal/version"
)

func newBackupCommand() *cobra.Command {
	var dataDir, out string
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Write Slipway's data directory (management plane, shared datastore, keys) into one file",
		Long: `Write Slipway's data directory into one gzip-compressed tar: the
management plane's etcd, the clusters' shared datastore, the etcd of any
cluster that has its own, and the PKI, keys and records that go with them
(logs are left out). The file holds private keys; it is written with mode
0600.

With slipway serve stopped, the backup holds every etcd database's lock
and reads the files, so its stores are of one moment. While serve runs it
asks serve for the backup (through the socket backup.sock in the data
directory): serve reads each etcd through its snapshot API, the management
plane's first, while it holds back the creation and removal of clusters,
so the restored directory is what a crash at that moment would have left.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var m *backup.Manifest
			online := false
			err := atomicfile.WriteFrom(out, 0o600, func(w io.Writer) (err error) {
				m, err = backup.Backup(dataDir, w, backup.Options{Slipway: version.Version, Kubernetes: version.Kubernetes})
				return err
			})
			if errors.Is(err, backup.ErrRunning) {
				online = true
				fmt.Fprintf(cmd.ErrOrStderr(), "slipway serve is running over %s: asking it for an online backup...\n", dataDir)
				err = atomicfile.WriteFrom(out, 0o600, func(w io.Writer) (err error) {
					m, err = app.OnlineBackup(cmd.Context(), dataDir, w)
					return err
				})
			}
			if err != nil {
				return err
			}
			info, _ := os.Stat(out)
			kind := "offline"
			if online {
				kind = fmt.Sprintf("online, %d etcd snapshots", len(m.Snapshots))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "backed up %s (%s): %d etcd stores, %d files (%.1f MiB), into %s (%.1f MiB)\n",
				dataDir, kind, len(m.Etcds), m.Files, float64(m.Bytes)/(1<<20), out, float64(info.Size())/(1<<20))
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", defaultDataDir(), "the data directory to back up")
	cmd.Flags().StringVar(&out, "out", "", "the backup file to write")
	cmd.MarkFlagRequired("out")
	return cmd
}

func newRestoreCommand() *cobra.Command {
	var dataDir, from string
	cmd := &cobra.Command{
		Use:   "restore",
		Short: "Make a data directory from a backup; slipway serve then starts over it as it was",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := os.Open(from)
			if err != nil {
				return err
			}
			defer f.Close()
			m, err := backup.Restore(f, dataDir)
			if err != nil {
				return err
			}
			// A fleet's backup is its management serve's directory, which
			// holds the join file.
			start := "slipway serve"
			if _, err := os.Stat(filepath.Join(dataDir, app.JoinFile)); err == nil {
				start = "slipway management serve"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored %d etcd stores and %d files of the backup of %s (slipway %s) into %s; start it with: %s --data-dir %s\n",
				len(m.Etcds), m.Files, m.Created.Format("2006-01-02 15:04:05 UTC"), m.Slipway, dataDir, start, dataDir)
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", defaultDataDir(), "the data directory to make (must not exist or be empty)")
	// --in mirrors backup's --out; either names the file.
	cmd.Flags().StringVar(&from, "from", "", "the backup file to read (or --in)")
	cmd.Flags().StringVar(&from, "in", "", "the backup file to read (same as --from)")
	cmd.MarkFlagsOneRequired("from", "in")
	return cmd
}
