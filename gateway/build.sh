#!/usr/bin/env bash
# Builds qdm-gateway from Debian's packages, offline: Go (golang-go), grpc-gateway 1.6
# (golang-github-grpc-ecosystem-grpc-gateway-dev, golang-grpc-gateway: protoc-gen-grpc-gateway),
# protoc-gen-go 1.3 (protoc-gen-go-1-3) and grpc-go (golang-google-grpc-dev), in GOPATH mode
# over /usr/share/gocode. The Go stubs and the gateway's handlers are generated from
# proto/qdm/v1's google.api.http annotations.
#   gateway/build.sh OUT_BINARY WORK_DIR      (CMake's qdm-gateway target runs it)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
out=$1
work=$(mkdir -p "$2" && cd "$2" && pwd)
googleapis=${QDM_GOOGLEAPIS_DIR:-/usr/share/gocode/src/github.com/grpc-ecosystem/grpc-gateway/third_party/googleapis}
rm -rf "$work/src/qdm" "$work/protos" "$work/pb"
mkdir -p "$work/src/qdm/gateway" "$work/protos/qdm/v1"
# protoc-gen-go 1.3 and grpc-gateway 1.6 predate proto3 `optional`: their copy spells each optional
# field as the one-field oneof it stands for (the same wire format and JSON, presence kept).
for f in common jobs models sampling; do
  sed -E 's/^(\s*)optional (\S+) (\w+) = ([0-9]+);/\1oneof _\3 { \2 \3 = \4; }/' "$src/proto/qdm/v1/$f.proto" > "$work/protos/qdm/v1/$f.proto"
done
m=""
for f in common jobs models sampling; do m="${m}Mqdm/v1/$f.proto=qdm/gen/qdm/v1,"; done
m="${m}Mgoogle/api/annotations.proto=google.golang.org/genproto/googleapis/api/annotations,Mgoogle/protobuf/timestamp.proto=github.com/golang/protobuf/ptypes/timestamp"
# protoc-gen-go 1.3 writes beside the .proto's path, grpc-gateway by import path: both end in qdm/gen/qdm/v1.
mkdir -p "$work/src/qdm/gen/qdm/v1" "$work/pb"
protoc -I "$work/protos" -I "$googleapis" --go_out="plugins=grpc,$m:$work/pb" \
  --grpc-gateway_out="logtostderr=true,$m:$work/src" "$work/protos"/qdm/v1/{common,jobs,models,sampling}.proto
mv "$work"/pb/qdm/v1/*.pb.go "$work/src/qdm/gen/qdm/v1/"
cp "$src"/gateway/*.go "$work/src/qdm/gateway/"
GO111MODULE=off GOPATH="$work:/usr/share/gocode" GOCACHE="$work/cache" GOFLAGS=-trimpath go build -o "$out" qdm/gateway
