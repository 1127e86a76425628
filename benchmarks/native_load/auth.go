package main

import (
	"context"

	"google.golang.org/grpc/metadata"
)

func withAuthorization(ctx context.Context, value string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", value)
}
