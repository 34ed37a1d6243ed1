package bench;

import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.json.JsonObject;
import io.vertx.ext.web.client.HttpResponse;
import io.vertx.ext.web.client.WebClient;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.clients.producer.ProducerRecord;

/**
 * One agent.speak: the POST that bench/peers.py sends (path, Authorization, JSON body), then the
 * same result record, keyed like the command; done once the broker acknowledged it.
 */
final class Speak {
  static final String APP = "bench-app";
  static final String AUTHORIZATION = "Basic YmVuY2g6YmVuY2g="; // bench:bench, as the worker sends

  private final String base;
  private final String results;
  private final Producer<String, byte[]> producer;

  Speak(String base, String results, Producer<String, byte[]> producer) {
    this.base = base;
    this.results = results;
    this.producer = producer;
  }

  Future<HttpResponse<Buffer>> run(WebClient web, ConsumerRecord<String, byte[]> record) {
    JsonObject command = new JsonObject(Buffer.buffer(record.value()));
    String url = base + "/v2/projects/" + APP + "/agents/" + command.getString("agent_id") + "/speak";
    return web.postAbs(url)
        .putHeader("Authorization", AUTHORIZATION)
        .sendJsonObject(new JsonObject().put("text", command.getString("text")))
        .compose(response -> publish(record.key(), result(command, response)).map(response));
  }

  static byte[] result(JsonObject command, HttpResponse<Buffer> response) {
    int status = response.statusCode();
    return new JsonObject()
        .put("command_id", command.getString("id"))
        .put("command", command.getString("command"))
        .put("outcome", status == 200 ? "succeeded" : "failed")
        .put("status", status)
        .put("data", response.bodyAsJson(Object.class))
        .toBuffer()
        .getBytes();
  }

  private Future<Void> publish(String key, byte[] value) {
    Promise<Void> acked = Promise.promise();
    producer.send(
        new ProducerRecord<>(results, key, value),
        (metadata, error) -> {
          if (error == null) {
            acked.complete();
          } else {
            acked.fail(error);
          }
        });
    return acked.future();
  }
}
