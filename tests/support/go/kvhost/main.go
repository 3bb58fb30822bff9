// Command kvhost is a go-plugin host for plugwire's interop tests: it loads a KV plugin
// (any command: a Go plugin or a Python one served by plugwire) and runs operations on it.
//
// Usage:
//
//	kvhost [flags] OP... -- COMMAND [ARG...]
//
// Operations, run in order:
//
//	put KEY VALUE   call KV.Put
//	get KEY         call KV.Get
//	ping            go-plugin's health check (grpc.health.v1, service "plugin")
//	exited          report whether the plugin process has exited
//	wait            print a "ready" line, then block until a line arrives on stdin (its end
//	                does not count), the host gets SIGTERM, SIGINT or SIGUSR1, or the plugin
//	                process exits; then print how the wait ended
//
// Every operation prints one JSON object on stdout ({"op": ..., ...}, with "error" when it
// failed; the run stops at the first failure). The first line is the start:
// {"op":"start","version":N,"protocol":"grpc","pid":N,"network":"unix","address":"..."} or {"op":"start","error":"..."}. The last
// line, after client.Kill(), is {"op":"killed"}. go-plugin's own log (hclog, text) goes to
// stderr at -log-level, with the plugin's log lines under the logger "kvhost.<command>".
//
// Exit status: 0 every operation worked, 1 an operation failed, 2 usage, 3 the plugin did
// not start (handshake refused, timeout, exit).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"kvshared"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
)

func emit(fields map[string]interface{}) {
	line, err := json.Marshal(fields)
	if err != nil {
		panic(err)
	}
	os.Stdout.Write(append(line, '\n'))
}

func usage(msg string) {
	fmt.Fprintf(os.Stderr, "kvhost: %s\nusage: kvhost [flags] OP... -- COMMAND [ARG...]\n", msg)
	os.Exit(2)
}

func main() {
	cookieKey := flag.String("cookie-key", kvshared.Handshake.MagicCookieKey, "magic cookie key")
	cookieValue := flag.String("cookie-value", kvshared.Handshake.MagicCookieValue, "magic cookie value")
	versions := flag.String("versions", "1", "app protocol versions the host offers, comma separated")
	protocols := flag.String("protocols", "grpc", "allowed plugin protocols, comma separated (grpc, netrpc)")
	startTimeout := flag.Duration("start-timeout", 10*time.Second, "how long to wait for the handshake line")
	autoMTLS := flag.Bool("automtls", false, "negotiate mTLS with the plugin (go-plugin AutoMTLS)")
	logLevel := flag.String("log-level", "trace", "hclog level of the host's log on stderr")
	logJSON := flag.Bool("log-json", false, "write the host's log as hclog JSON")
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
		usage("no plugin command after --")
	}
	ops, command := args[:split], args[split+1:]

	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "kvhost",
		Output:     os.Stderr,
		Level:      hclog.LevelFromString(*logLevel),
		JSONFormat: *logJSON,
	})

	versioned := map[int]plugin.PluginSet{}
	for _, v := range strings.Split(*versions, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			usage(fmt.Sprintf("-versions: %q is not a number", v))
		}
		versioned[n] = kvshared.PluginMap(nil)
	}
	var allowed []plugin.Protocol
	for _, p := range strings.Split(*protocols, ",") {
		allowed = append(allowed, plugin.Protocol(strings.TrimSpace(p)))
	}

	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: plugin.HandshakeConfig{
			MagicCookieKey:   *cookieKey,
			MagicCookieValue: *cookieValue,
		},
		VersionedPlugins: versioned,
		Cmd:              exec.Command(command[0], command[1:]...),
		AllowedProtocols: allowed,
		StartTimeout:     *startTimeout,
		AutoMTLS:         *autoMTLS,
		Logger:           logger,
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
	raw, err := rpcClient.Dispense(kvshared.PluginName)
	if err != nil {
		emit(map[string]interface{}{"op": "start", "error": err.Error()})
		return 3
	}
	started := map[string]interface{}{
		"op": "start", "version": client.NegotiatedVersion(), "protocol": string(client.Protocol()),
	}
	if reattach := client.ReattachConfig(); reattach != nil {
		started["pid"] = reattach.Pid
		started["network"] = reattach.Addr.Network()
		started["address"] = reattach.Addr.String()
	}
	emit(started)
	kv := raw.(kvshared.KV)

	for len(ops) > 0 {
		op := ops[0]
		need := map[string]int{"put": 2, "get": 1, "ping": 0, "exited": 0, "wait": 0}
		n, known := need[op]
		if !known {
			emit(map[string]interface{}{"op": op, "error": "unknown operation"})
			return 1
		}
		if len(ops) < 1+n {
			emit(map[string]interface{}{"op": op, "error": "missing arguments"})
			return 1
		}
		operands := ops[1 : 1+n]
		ops = ops[1+n:]
		result := map[string]interface{}{"op": op}
		var err error
		switch op {
		case "put":
			result["key"] = operands[0]
			err = kv.Put(operands[0], []byte(operands[1]))
		case "get":
			var value []byte
			result["key"] = operands[0]
			value, err = kv.Get(operands[0])
			result["value"] = string(value)
		case "ping":
			err = rpcClient.Ping()
		case "exited":
			result["exited"] = client.Exited()
		case "wait":
			result["ended"] = wait(client)
		}
		if err != nil {
			result["error"] = err.Error()
			emit(result)
			return 1
		}
		emit(result)
	}
	return 0
}

// wait blocks until stdin gives a line (or ends), a signal arrives or the plugin exits, and
// says which. go-plugin 1.0.1 has no channel for the plugin's exit, so Exited is polled.
func wait(client *plugin.Client) string {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	defer signal.Stop(signals)
	lines := make(chan struct{}, 1)
	go func() {
		// A line ends the wait; the end of stdin (a host run with </dev/null) does not.
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err == nil {
			lines <- struct{}{}
		}
	}()
	emit(map[string]interface{}{"op": "wait", "ready": true})
	ticker := time.NewTicker(20 * time.Millisecond)
	defer ticker.Stop()
	for {
		select {
		case <-lines:
			return "stdin"
		case s := <-signals:
			return "signal " + s.String()
		case <-ticker.C:
			if client.Exited() {
				return "plugin-exited"
			}
		}
	}
}
