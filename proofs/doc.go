// Package proofs holds the executable proofs of nfsindex's primitives.
package proofs
