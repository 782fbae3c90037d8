"""An embedded Apache Kafka broker (real JVM, KRaft mode) for tests and the demo. See ``broker.py``."""

from rnnstream.embedded.jars import KAFKA_VERSION, ensure_jars, find_java
from rnnstream.embedded.broker import EmbeddedKafka

__all__ = ["KAFKA_VERSION", "EmbeddedKafka", "ensure_jars", "find_java"]
