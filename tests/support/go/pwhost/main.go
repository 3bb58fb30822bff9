// Command pwhost is a go-plugin host written against proto/plugwire/v1/plugin.proto: it
// loads any plugwire plugin served with plugwire.serve(plugin, transport="go-plugin") and
// calls the plugwire.v1.Plugin service, for plugwire's interop tests.
//
// Usage:
//
//	pwhost [-cookie-key K] [-cookie-value V] [-version N] OP... -- COMMAND [ARG...]
//
// Operations, run in order:
//
//	info            call Info
//	health          call Health
//	execute JSON    call Execute with the JSON request (content type application/json)
//	ping            go-plugin's health check (grpc.health.v1, service "plugin")
//
// Every operation prints one JSON object on stdout ({"op": ..., ...}, with "error" and
// "code" (the plugwire-code trailer) when it failed; the run stops at the first failure),
// after a first {"op":"start",...} line and before a last {"op":"killed"}. go-plugin's log
// goes to stderr. Exit status: 0 every operation worked, 1 an operation failed, 2 usage,
// 3 the plugin did not start.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"time"

	pwproto "pwproto"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

type pwPlugin struct {
	plugin.Plugin
}

func (p *pwPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	return fmt.Errorf("pwhost only loads plugins")
}

func (p *pwPlugin) GRPCClient(ctx context.Context, broker *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return pwproto.NewPluginClient(c), nil
}

func emit(fields map[string]interface{}) {
	line, err := json.Marshal(fields)
	if err != nil {
		panic(err)
	}
	os.Stdout.Write(append(line, '\n'))
}

func main() {
	cookieKey := flag.String("cookie-key", "PLUGWIRE_GO_HOST", "magic cookie key")
	cookieValue := flag.String("cookie-value", "pwhost", "magic cookie value")
	version := flag.Int("version", 1, "the app protocol version the host offers")
	flag.Parse()
	args := flag.Args()
	split := -1
	for i, a := range args {
		if a == "--" {
			split = i
			break
		}
	}
	if split < 0 || split == len(args)-1 {
		fmt.Fprintln(os.Stderr, "usage: pwhost [flags] OP... -- COMMAND [ARG...]")
		os.Exit(2)
	}
	ops, command := args[:split], args[split+1:]
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: plugin.HandshakeConfig{
			ProtocolVersion:  uint(*version),
			MagicCookieKey:   *cookieKey,
			MagicCookieValue: *cookieValue,
		},
		Plugins:          map[string]plugin.Plugin{"plugwire": &pwPlugin{}},
		Cmd:              exec.Command(command[0], command[1:]...),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           hclog.New(&hclog.LoggerOptions{Name: "pwhost", Output: os.Stderr, Level: hclog.Trace}),
	})
	os.Exit(run(client, ops))
}

func run(client *plugin.Client, ops []string) int {
	defer func() {
		client.Kill()
		emit(map[string]interface{}{"op": "killed"})
	}()
	rpcClient, err := client.Client()
	if err != nil {
		emit(map[string]interface{}{"op": "start", "error": err.Error()})
		return 3
	}
	raw, err := rpcClient.Dispense("plugwire")
	if err != nil {
		emit(map[string]interface{}{"op": "start", "error": err.Error()})
		return 3
	}
	emit(map[string]interface{}{"op": "start", "version": client.NegotiatedVersion()})
	pw := raw.(pwproto.PluginClient)
	for len(ops) > 0 {
		op := ops[0]
		ops = ops[1:]
		result := map[string]interface{}{"op": op}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var trailer metadata.MD
		var err error
		switch op {
		case "info":
			var info *pwproto.InfoResponse
			info, err = pw.Info(ctx, &pwproto.InfoRequest{}, grpc.Trailer(&trailer))
			if err == nil {
				result["name"], result["version"], result["capabilities"] = info.Name, info.Version, info.Capabilities
			}
		case "health":
			var health *pwproto.HealthResponse
			health, err = pw.Health(ctx, &pwproto.HealthRequest{}, grpc.Trailer(&trailer))
			if err == nil {
				result["status"], result["message"] = health.Status, health.Message
			}
		case "execute":
			if len(ops) == 0 {
				cancel()
				emit(map[string]interface{}{"op": op, "error": "missing the JSON request"})
				return 1
			}
			request := ops[0]
			ops = ops[1:]
			var reply *pwproto.ExecuteResponse
			reply, err = pw.Execute(ctx, &pwproto.ExecuteRequest{
				Method: "execute", Payload: []byte(request), ContentType: "application/json", RequestId: "pwhost-1",
			}, grpc.Trailer(&trailer))
			if err == nil {
				result["reply"], result["content_type"] = string(reply.Payload), reply.ContentType
			}
		case "ping":
			err = rpcClient.Ping()
		default:
			cancel()
			emit(map[string]interface{}{"op": op, "error": "unknown operation"})
			return 1
		}
		cancel()
		if err != nil {
			result["error"] = err.Error()
			if codes := trailer.Get("plugwire-code"); len(codes) > 0 {
				result["code"] = codes[0]
			}
			emit(result)
			return 1
		}
		emit(result)
	}
	return 0
}
