package db

import (
	"encoding/hex"

	"github.com/google/uuid"
)

// AppendUUID appends id in its canonical text form, as id.String() and
// PostgreSQL's uuid::text write it, without allocating: for code that
// formats thousands of ids into one buffer (a snapshot's revocations, the
// AAD of every agent key it opens).
func AppendUUID(dst []byte, id uuid.UUID) []byte {
	dst = hex.AppendEncode(dst, id[0:4])
	for _, part := range [][]byte{id[4:6], id[6:8], id[8:10], id[10:16]} {
		dst = append(dst, '-')
		dst = hex.AppendEncode(dst, part)
	}
	return dst
}
