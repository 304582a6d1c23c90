// Package ingest subscribes to the feeds' MQTT topics and hands every
// message to its feeds' decoders.
//
// The paho message callback never blocks: it stamps the time of receipt
// (which becomes the reading's timestamp when the payload has none, so a
// replayed point lands on the same key) and queues the message for a pool of
// workers. A message that finds the queue full is rejected as overload with
// its payload kept, so that nothing is lost without a trace. Accepted points
// go to a Sink (storage and panels). The connection retries forever with
// backoff and resubscribes on every reconnect.
//
// When no broker URL is configured, Broker runs an embedded MQTT broker on a
// loopback address so that a demo or a small site needs no other service.
package ingest
