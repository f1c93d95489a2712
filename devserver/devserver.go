// Package devserver runs a Temporal server and its Web UI inside this process, on a SQLite file,
// so that `make run` needs nothing installed but Go. Production points TEMPORAL_ADDRESS at a real
// cluster instead and never links this package (only cmd/automation and the end-to-end tests do).
package devserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uioptions "github.com/temporalio/ui-server/v2/server/server_options"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/server/common/cluster"
	temporalconfig "go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"

	"github.com/pyairtable/automation-domain/config"
)

// Options configures Start.
type Options struct {
	// DatabaseFile is the SQLite file; it is created with Temporal's schema when missing.
	DatabaseFile string
	// IP to bind on; default 127.0.0.1.
	IP string
	// FrontendPort is the gRPC port clients dial (TEMPORAL_PORT).
	FrontendPort int
	// UIPort serves the Web UI; 0 turns the UI off.
	UIPort int
	// Namespaces are registered at start-up if missing; the first is the UI's default.
	Namespaces []string
	// SearchAttributes are custom search attributes registered with new namespaces.
	SearchAttributes map[string]enumspb.IndexedValueType
	// Logger receives the server's warnings and errors.
	Logger *slog.Logger
	// LogLevel for the server's own logs; default warn (the server is chatty).
	LogLevel slog.Level
}

// Server is a running embedded Temporal server (and UI).
type Server struct {
	logLevel *slog.LevelVar
	server   temporal.Server
	ui       *uiserver.Server
	address  string
	uiURL    string
}

// Address is the frontend's host:port.
func (s *Server) Address() string { return s.address }

// UIURL is the Web UI's base URL, or "" when the UI is off.
func (s *Server) UIURL() string { return s.uiURL }

const (
	clusterName = "active"
	// clusterID is fixed so that the SQLite file keeps matching the cluster across restarts.
	clusterID = "5b0c4a2e-9a53-4c0e-8f0b-7a3c1f1d2e10"
)

// Start brings the server up and returns once its frontend accepts connections.
func Start(o Options) (*Server, error) {
	if o.DatabaseFile == "" || o.FrontendPort == 0 || len(o.Namespaces) == 0 {
		return nil, errors.New("devserver: DatabaseFile, FrontendPort and Namespaces are required")
	}
	if o.IP == "" {
		o.IP = "127.0.0.1"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.LogLevel == 0 {
		o.LogLevel = slog.LevelWarn
	}
	frontend := net.JoinHostPort(o.IP, strconv.Itoa(o.FrontendPort))
	if err := portFree(frontend); err != nil {
		return nil, fmt.Errorf("devserver: TEMPORAL_PORT %d: %w", o.FrontendPort, err)
	}
	if o.UIPort != 0 {
		if err := portFree(net.JoinHostPort(o.IP, strconv.Itoa(o.UIPort))); err != nil {
			return nil, fmt.Errorf("devserver: TEMPORAL_UI_PORT %d: %w", o.UIPort, err)
		}
	}
	logLevel := new(slog.LevelVar)
	logLevel.Set(o.LogLevel)
	cfg, err := buildConfig(o)
	if err != nil {
		return nil, err
	}
	hosts := make(map[primitives.ServiceName]static.Hosts, len(cfg.Services))
	for name, svc := range cfg.Services {
		hosts[primitives.ServiceName(name)] = static.SingleLocalHost(
			net.JoinHostPort(o.IP, strconv.Itoa(svc.RPC.GRPCPort)))
	}
	dyn := dynamicconfig.StaticClient{
		// One process serves every role: keep more workflow state cached and let the Web UI and
		// the operators' CLI list freely.
		dynamicconfig.HistoryCacheHostLevelMaxSize.Key():                 8192,
		dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 100,
		// Search attributes registered at start-up (the workflow engine's) become usable
		// after the next namespace cache refresh: make that quick.
		dynamicconfig.NamespaceCacheRefreshInterval.Key(): time.Second,
		// Task priority (the workflow engine's low … critical) is applied within a task queue
		// partition; one node needs no more than one, and with one the order is strict.
		dynamicconfig.MatchingNumTaskqueueReadPartitions.Key():  1,
		dynamicconfig.MatchingNumTaskqueueWritePartitions.Key(): 1,
	}
	srv, err := temporal.NewServer(
		temporal.WithConfig(cfg),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(hosts),
		temporal.WithLogger(newServerLogger(o.Logger.With("component", "temporal-server"), logLevel)),
		temporal.WithDynamicConfigClient(dyn),
	)
	if err != nil {
		return nil, fmt.Errorf("devserver: new server: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("devserver: start: %w", err)
	}
	s := &Server{server: srv, address: frontend, logLevel: logLevel}
	if o.UIPort != 0 {
		s.ui = uiserver.NewServer(uioptions.WithConfigProvider(&uiconfig.Config{
			Host:                o.IP,
			Port:                o.UIPort,
			TemporalGRPCAddress: frontend,
			EnableUI:            true,
			DefaultNamespace:    o.Namespaces[0],
			CORS:                uiconfig.CORS{CookieInsecure: true},
			HideLogs:            true,
			DisableNewsFetch:    true,
		}))
		uiErr := make(chan error, 1)
		go func() { uiErr <- s.ui.Start() }()
		if err := waitListening(net.JoinHostPort(o.IP, strconv.Itoa(o.UIPort)), uiErr, 10*time.Second); err != nil {
			srv.Stop()
			return nil, fmt.Errorf("devserver: web UI: %w", err)
		}
		s.uiURL = fmt.Sprintf("http://%s", net.JoinHostPort(displayHost(o.IP), strconv.Itoa(o.UIPort)))
	}
	return s, nil
}

// Stop shuts the UI and the server down.
func (s *Server) Stop() {
	s.logLevel.Set(silenced)
	if s.ui != nil {
		s.ui.Stop()
	}
	s.server.Stop()
}

func buildConfig(o Options) (*temporalconfig.Config, error) {
	if err := os.MkdirAll(filepath.Dir(o.DatabaseFile), 0o755); err != nil {
		return nil, fmt.Errorf("devserver: %w", err)
	}
	sqlCfg := &temporalconfig.SQL{
		PluginName:   sqliteplugin.PluginName,
		DatabaseName: o.DatabaseFile,
		// WAL lets readers (visibility, the Web UI) run beside the writer; synchronous=NORMAL is
		// durable across a crash of this process, which is what the embedded mode promises.
		ConnectAttributes: map[string]string{
			"mode": "rwc", "journal_mode": "wal", "synchronous": "normal", "busy_timeout": "10000",
		},
	}
	if _, err := os.Stat(o.DatabaseFile); errors.Is(err, os.ErrNotExist) {
		if err := sqliteschema.SetupSchema(sqlCfg); err != nil {
			return nil, fmt.Errorf("devserver: create schema in %s: %w", o.DatabaseFile, err)
		}
	}
	namespaces := make([]*sqliteschema.NamespaceConfig, 0, len(o.Namespaces))
	for _, ns := range o.Namespaces {
		nc, err := sqliteschema.NewNamespaceConfig(clusterName, ns, false, o.SearchAttributes)
		if err != nil {
			return nil, fmt.Errorf("devserver: namespace %s: %w", ns, err)
		}
		namespaces = append(namespaces, nc)
	}
	if err := sqliteschema.CreateNamespaces(sqlCfg, namespaces...); err != nil {
		return nil, fmt.Errorf("devserver: register namespaces: %w", err)
	}

	frontend := net.JoinHostPort(o.IP, strconv.Itoa(o.FrontendPort))
	httpPort, err := freePort(o.IP)
	if err != nil {
		return nil, err
	}
	var c temporalconfig.Config
	c.Global.Membership.MaxJoinDuration = 30 * time.Second
	c.Global.Membership.BroadcastAddress = o.IP
	c.Persistence.DefaultStore = "sqlite"
	c.Persistence.VisibilityStore = "sqlite"
	c.Persistence.NumHistoryShards = 1
	c.Persistence.DataStores = map[string]temporalconfig.DataStore{"sqlite": {SQL: sqlCfg}}
	c.ClusterMetadata = &cluster.Config{
		FailoverVersionIncrement: 10,
		MasterClusterName:        clusterName,
		CurrentClusterName:       clusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{clusterName: {
			Enabled:                true,
			InitialFailoverVersion: 1,
			RPCAddress:             frontend,
			HTTPAddress:            net.JoinHostPort(o.IP, strconv.Itoa(httpPort)),
			ClusterID:              clusterID,
		}},
	}
	c.DCRedirectionPolicy.Policy = "noop"
	c.Services = map[string]temporalconfig.Service{}
	for _, name := range []string{"frontend", "history", "matching", "worker"} {
		var svc temporalconfig.Service
		svc.RPC.BindOnIP = o.IP
		if name == "frontend" {
			svc.RPC.GRPCPort = o.FrontendPort
			svc.RPC.HTTPPort = httpPort
		} else if svc.RPC.GRPCPort, err = freePort(o.IP); err != nil {
			return nil, err
		}
		c.Services[name] = svc
	}
	c.Archival.History.State = "disabled"
	c.Archival.Visibility.State = "disabled"
	c.NamespaceDefaults.Archival.History.State = "disabled"
	c.NamespaceDefaults.Archival.Visibility.State = "disabled"
	c.PublicClient.HostPort = frontend
	return &c, nil
}

// freePort asks the kernel for an unused port for the server's internal services.
func freePort(ip string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("devserver: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// portFree fails early, with a clear message, when another process holds addr.
func portFree(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("in use (is another instance running? set another port): %w", err)
	}
	return l.Close()
}

func waitListening(addr string, failed <-chan error, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-failed:
			return err
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			return c.Close()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not listening on %s after %s", addr, timeout)
}

func displayHost(ip string) string {
	if ip == "0.0.0.0" || ip == "127.0.0.1" {
		return "localhost"
	}
	return ip
}

// FromConfig starts the embedded server the way the service's configuration asks: its SQLite file
// in DATA_DIR, the frontend on TEMPORAL_PORT, the Web UI on TEMPORAL_UI_PORT (0: off), and the
// service's namespace (plus "default", which the CLI and UI use when none is named).
func FromConfig(cfg *config.Config, log *slog.Logger) (*Server, error) {
	namespaces := []string{cfg.TemporalNamespace}
	if cfg.TemporalNamespace != "default" {
		namespaces = append(namespaces, "default")
	}
	return Start(Options{
		DatabaseFile: cfg.TemporalSQLitePath(),
		FrontendPort: cfg.TemporalPort,
		UIPort:       cfg.TemporalUIPort,
		Namespaces:   namespaces,
		Logger:       log,
	})
}
