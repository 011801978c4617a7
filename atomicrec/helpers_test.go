package atomicrec

import (
	"encoding/binary"

	"github.com/cespare/xxhash/v2"
)

func putU64(b []byte, v uint64) { binary.LittleEndian.PutUint64(b, v) }

func xxhash64(b []byte) uint64 { return xxhash.Sum64(b) }
