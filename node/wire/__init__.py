"""The wire format: protobuf messages generated from proto/, converted by ``codec`` only."""
