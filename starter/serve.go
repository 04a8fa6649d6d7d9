package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/offboard/offboard/internal/codec"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/siem"
	"github.com/offboard/offboard/internal/tclient"
	"github.com/offboard/offboard/relay"
)

// serveCmd runs the HRIS webhook relay and the operator API.
func serveCmd(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("starter serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", os.Getenv("OFFBOARD_CONFIG"), "configuration file (default: embedded sandbox configuration)")
	listen := fs.String("listen", "", "address to listen on (default: starter.listen from the configuration, :8080)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintln(stderr, "starter serve:", err)
		return exitUsage
	}
	addr := cfg.Starter.Listen
	if *listen != "" {
		addr = *listen
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	c, err := tclient.Dial(cfg, logger)
	if err != nil {
		fmt.Fprintln(stderr, "starter serve:", err)
		return exitFailed
	}
	defer c.Close()
	if err := relay.CheckDecisionKey(cfg.Relay, cfg.People); err != nil {
		fmt.Fprintln(stderr, "starter serve:", err)
		return exitUsage
	}
	// Decisions go to the SIEM from here (they run no activity); SETs only from the worker.
	sc := cfg.SIEM
	sc.SSF = nil
	events, err := siem.FromConfig(sc)
	if err != nil {
		fmt.Fprintln(stderr, "starter serve:", err)
		return exitUsage
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = events.Close(cctx)
	}()
	rcfg := relay.ConfigFrom(cfg.Relay, cfg.Roles)
	rcfg.Transmitter, rcfg.Events = cfg.SIEM.SSF, events
	rl, err := relay.New(rcfg, c, logger)
	if err != nil {
		fmt.Fprintln(stderr, "starter serve:", err)
		return exitUsage
	}
	codecLn, err := listenCodec(cfg, logger)
	if err != nil {
		fmt.Fprintln(stderr, "starter serve:", err)
		return exitUsage
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	codecDone := make(chan error, 1)
	if codecLn != nil {
		go func() {
			err := relay.ServeListener(ctx, codecLn.ln, codecLn.handler)
			cancel() // a failed codec server stops the relay too
			codecDone <- err
		}()
	} else {
		codecDone <- nil
	}
	logger.Info("starter listening", "addr", addr, "config", cfg.Source())
	err = relay.Serve(ctx, addr, rl.Handler())
	cancel()
	if cerr := <-codecDone; cerr != nil && err == nil {
		err = fmt.Errorf("codec server: %w", cerr)
	}
	if err != nil {
		fmt.Fprintln(stderr, "starter serve:", err)
		return exitFailed
	}
	return exitOK
}

type codecListener struct {
	ln      net.Listener
	handler http.Handler
}

// listenCodec opens the codec server (POST /encode, /decode for the Temporal
// Web UI and CLI) on codec.server.listen, when it is set.
func listenCodec(cfg config.Config, logger *slog.Logger) (*codecListener, error) {
	s := cfg.Codec.Server
	if !cfg.Codec.Enabled() || s.Listen == "" {
		return nil, nil
	}
	keys, err := tclient.Keyring(cfg)
	if err != nil {
		return nil, err
	}
	opts := codec.HandlerOptions{
		AllowedOrigins:   s.AllowedOrigins,
		AllowCredentials: s.AllowCredentials,
		TokenSHA256:      s.TokenSHA256,
		Anonymous:        s.Anonymous,
		Logger:           logger,
	}
	if o := s.OIDC; o != nil {
		opts.OIDC = codec.NewOIDC(codec.OIDCOptions{Issuer: o.Issuer, Audience: o.Audience, UserClaim: o.UserClaim,
			Allow: o.Allow, GroupsClaim: o.GroupsClaim, AllowGroups: o.AllowGroups})
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", s.Listen)
	if err != nil {
		return nil, fmt.Errorf("codec server: listen %s: %w", s.Listen, err)
	}
	logger.Info("codec server listening", "addr", s.Listen, "keys", keys.IDs(), "primary", keys.Primary(), "anonymous", s.Anonymous, "oidcIssuer", oidcIssuer(s.OIDC))
	return &codecListener{ln: ln, handler: codec.Handler(keys, opts)}, nil
}

func oidcIssuer(o *config.CodecOIDC) string {
	if o == nil {
		return ""
	}
	return o.Issuer
}
