"""MQTT topics and the wire codec, the publisher, the ingest service (broker to store), the embedded broker.

May import: schema, fleet, store, sources, errors, paho-mqtt, amqtt, orjson.
"""
