// Package feed turns raw MQTT messages into typed points.
//
// A Spec is what an engineer writes in feeds/*.yaml: the topic filter, the
// payload format and the fields, tags and timestamp to take from it. New
// compiles a Spec into a Feed, whose Decode is pure and safe to call from many
// goroutines at once. Every message that cannot be turned into points becomes a
// *Rejection with a reason precise enough to fix the sender or the spec; a Feed
// counts what it received, accepted and rejected, and keeps the newest
// rejections with their payloads so that nothing is dropped without a trace.
package feed
