"""The stream quality monitor's compute (issue 13): pure functions, no Kafka.

``formats`` decodes one record value per stream format, ``window`` cuts tumbling windows by
record time and says when they close, ``metrics`` turns a window's decoded records into the
stream aggregate's ``WindowMetrics``. The worker role ``runtime/worker/monitor.py`` feeds
them from Kafka.
"""
