// Package pluginpb holds the generated code of Gatehouse's plugin wire
// protocol (plugin.proto, which states the compatibility rule). Plugin
// authors do not use it: they implement the sdk phase interfaces and call
// sdk/plugin.Serve.
//
// Regenerate with go generate (protoc 3.21 from Debian's protobuf-compiler,
// protoc-gen-go v1.36.12, protoc-gen-go-grpc v1.3.0 — the versions matching
// google.golang.org/protobuf and google.golang.org/grpc in go.mod).
package pluginpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative plugin.proto
