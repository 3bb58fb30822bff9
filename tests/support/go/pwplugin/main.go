// Command pwplugin is a go-plugin gRPC plugin that serves plugwire's own plugin service,
// plugwire.v1.Plugin (proto/plugwire/v1/plugin.proto, compiled at build time into the package
// pwproto), so a plugwire host calls it with manager.execute like any plugwire plugin.
//
// Execute answers with the request's payload unchanged (an echo: the host's codec decodes
// its own encoding), Health is "healthy", Info names the plugin "pwplugin" 1.0.0. It logs one
// hclog JSON line per call at debug, at level trace unless PWPLUGIN_LOG_LEVEL names another
// (the benchmark sets "info": the call alone is measured). Handshake: app protocol 1, cookie
// PWPLUGIN=plugwire.
package main

import (
	"context"
	"os"

	pw "pwproto"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

type server struct {
	logger hclog.Logger
}

func (s *server) Execute(ctx context.Context, req *pw.ExecuteRequest) (*pw.ExecuteResponse, error) {
	s.logger.Debug("execute", "request_id", req.RequestId, "bytes", len(req.Payload))
	return &pw.ExecuteResponse{Payload: req.Payload, ContentType: req.ContentType}, nil
}

func (s *server) Health(ctx context.Context, req *pw.HealthRequest) (*pw.HealthResponse, error) {
	return &pw.HealthResponse{Status: "healthy", Message: "go plugin ok"}, nil
}

func (s *server) Info(ctx context.Context, req *pw.InfoRequest) (*pw.InfoResponse, error) {
	return &pw.InfoResponse{Name: "pwplugin", Version: "1.0.0", Description: "a Go plugwire.v1 plugin"}, nil
}

// pwPlugin binds the service to go-plugin; a Go host would not dispense it (no client side).
type pwPlugin struct {
	plugin.Plugin
	impl *server
}

func (p *pwPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	pw.RegisterPluginServer(s, p.impl)
	return nil
}

func (p *pwPlugin) GRPCClient(ctx context.Context, broker *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return pw.NewPluginClient(c), nil
}

func main() {
	level := hclog.Trace
	if name := os.Getenv("PWPLUGIN_LOG_LEVEL"); name != "" {
		level = hclog.LevelFromString(name)
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "pwplugin",
		Level:      level,
		Output:     os.Stderr,
		JSONFormat: true,
	})
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: plugin.HandshakeConfig{
			ProtocolVersion:  1,
			MagicCookieKey:   "PWPLUGIN",
			MagicCookieValue: "plugwire",
		},
		Plugins:    map[string]plugin.Plugin{"plugwire": &pwPlugin{impl: &server{logger: logger}}},
		GRPCServer: plugin.DefaultGRPCServer,
	})
}
