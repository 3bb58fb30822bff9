// Package kvshared holds what the KV host and the KV plugin agree on: the handshake of
// go-plugin's gRPC example, the plugin map and the glue between the KV interface and the
// gRPC stubs generated from kv.proto.
package kvshared

import (
	"context"

	"kvproto"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// PluginName is the name the host dispenses and the plugin serves.
const PluginName = "kv_grpc"

// Handshake is go-plugin's example handshake: app protocol 1, cookie BASIC_PLUGIN=hello.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "BASIC_PLUGIN",
	MagicCookieValue: "hello",
}

// KV is the interface the plugin implements and the host calls.
type KV interface {
	Put(key string, value []byte) error
	Get(key string) ([]byte, error)
}

// KVGRPCPlugin binds KV to go-plugin's gRPC plugin interface. Impl is only set in the plugin.
type KVGRPCPlugin struct {
	plugin.Plugin
	Impl KV
}

// GRPCServer registers the KV service on the plugin's gRPC server.
func (p *KVGRPCPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	kvproto.RegisterKVServer(s, &kvServer{impl: p.Impl})
	return nil
}

// GRPCClient gives the host a KV backed by the plugin's connection.
func (p *KVGRPCPlugin) GRPCClient(ctx context.Context, broker *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return &kvClient{client: kvproto.NewKVClient(c)}, nil
}

// PluginMap returns the plugin set both sides use.
func PluginMap(impl KV) map[string]plugin.Plugin {
	return map[string]plugin.Plugin{PluginName: &KVGRPCPlugin{Impl: impl}}
}

type kvClient struct {
	client kvproto.KVClient
}

func (c *kvClient) Put(key string, value []byte) error {
	_, err := c.client.Put(context.Background(), &kvproto.PutRequest{Key: key, Value: value})
	return err
}

func (c *kvClient) Get(key string) ([]byte, error) {
	resp, err := c.client.Get(context.Background(), &kvproto.GetRequest{Key: key})
	if err != nil {
		return nil, err
	}
	return resp.Value, nil
}

type kvServer struct {
	impl KV
}

func (s *kvServer) Put(ctx context.Context, req *kvproto.PutRequest) (*kvproto.Empty, error) {
	return &kvproto.Empty{}, s.impl.Put(req.Key, req.Value)
}

func (s *kvServer) Get(ctx context.Context, req *kvproto.GetRequest) (*kvproto.GetResponse, error) {
	v, err := s.impl.Get(req.Key)
	return &kvproto.GetResponse{Value: v}, err
}
