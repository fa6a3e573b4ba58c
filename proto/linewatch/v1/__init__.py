"""Generated protobuf and gRPC modules of linewatch.v1; regenerate with scripts/gen_proto.sh."""
