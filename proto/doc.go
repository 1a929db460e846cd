// Package pb holds the generated wire types of expertd's libp2p protocols
// and their framing (WriteFrame). Edit the .proto files and run
// `go generate ./proto`; the generated code is committed so a build needs
// neither protoc nor protoc-gen-go.
package pb

//go:generate protoc --go_out=. --go_opt=paths=source_relative fetch.proto
//go:generate protoc --go_out=. --go_opt=paths=source_relative announce.proto
