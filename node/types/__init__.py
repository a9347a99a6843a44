"""Pure values: committee and quorums, protocol messages, canonical encoding, the error tree."""
