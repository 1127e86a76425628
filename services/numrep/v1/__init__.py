"""Generated gRPC/protobuf code for numrep.v1. DO NOT EDIT: run `make proto`."""
