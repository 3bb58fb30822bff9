// Command kvplugin is a go-plugin gRPC plugin serving the KV service from an in-memory map,
// for plugwire's interop tests (a plugwire host loading a real go-plugin plugin).
//
// It logs through hclog as JSON on stderr at every level, so a host can check how levels
// are mapped: at start one line per level ("kvplugin level trace" ... "kvplugin level error")
// and one plain (non-JSON) line "kvplugin plain stderr line"; on Put an info line "put" and
// on Get a debug line "get", both with the key.
//
// Environment knobs for fault tests:
//
//	KVPLUGIN_FAULT=exit-before-handshake   exit 3 before printing the handshake line
//	KVPLUGIN_FAULT=hang-before-handshake   never print the handshake line (sleeps an hour)
//	KVPLUGIN_FAULT=garbage-before-handshake print "garbage before the handshake" first
//	KVPLUGIN_FAULT=exit-on-put             exit 7 inside the first Put
//	KVPLUGIN_FAULT=hang-on-shutdown        answer GRPCController.Shutdown but keep running
//	KVPLUGIN_APP_VERSION=N                 serve app protocol version N instead of 1
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"kvproto"
	"kvshared"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

type store struct {
	mu     sync.Mutex
	values map[string][]byte
	logger hclog.Logger
	fault  string
}

func (s *store) Put(key string, value []byte) error {
	s.logger.Info("put", "key", key)
	if s.fault == "exit-on-put" {
		s.logger.Error("exiting on put as KVPLUGIN_FAULT asks")
		os.Exit(7)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.values[key] = append([]byte(nil), value...)
	return nil
}

func (s *store) Get(key string) ([]byte, error) {
	s.logger.Debug("get", "key", key)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.values[key], nil
}

// ignoreShutdown builds a gRPC server that answers go-plugin's GRPCController.Shutdown
// without stopping, so the host's graceful wait runs out and it kills the process.
func ignoreShutdown(opts []grpc.ServerOption) *grpc.Server {
	intercept := func(ctx context.Context, req interface{}, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (interface{}, error) {
		if info.FullMethod == "/plugin.GRPCController/Shutdown" {
			// The reply has no fields, like go-plugin's own Empty: the bytes are the same.
			return &kvproto.Empty{}, nil
		}
		return handler(ctx, req)
	}
	return grpc.NewServer(append(opts, grpc.UnaryInterceptor(intercept))...)
}

func main() {
	fault := os.Getenv("KVPLUGIN_FAULT")
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "kvplugin",
		Level:      hclog.Trace,
		Output:     os.Stderr,
		JSONFormat: true,
	})
	handshake := kvshared.Handshake
	if v := os.Getenv("KVPLUGIN_APP_VERSION"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kvplugin: KVPLUGIN_APP_VERSION %q is not a number\n", v)
			os.Exit(2)
		}
		handshake.ProtocolVersion = uint(n)
	}

	logger.Trace("kvplugin level trace")
	logger.Debug("kvplugin level debug")
	logger.Info("kvplugin level info")
	logger.Warn("kvplugin level warn")
	logger.Error("kvplugin level error")
	fmt.Fprintln(os.Stderr, "kvplugin plain stderr line")

	switch fault {
	case "exit-before-handshake":
		os.Exit(3)
	case "hang-before-handshake":
		time.Sleep(time.Hour)
	case "garbage-before-handshake":
		fmt.Println("garbage before the handshake")
	}

	server := plugin.DefaultGRPCServer
	if fault == "hang-on-shutdown" {
		server = ignoreShutdown
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: handshake,
		Plugins:         kvshared.PluginMap(&store{values: map[string][]byte{}, logger: logger, fault: fault}),
		GRPCServer:      server,
	})
}
