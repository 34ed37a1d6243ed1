package bench;

import io.confluent.parallelconsumer.ParallelConsumerOptions;
import io.confluent.parallelconsumer.ParallelConsumerOptions.CommitMode;
import io.confluent.parallelconsumer.ParallelConsumerOptions.ProcessingOrder;
import io.confluent.parallelconsumer.vertx.VertxParallelStreamProcessor;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The peer of bench/peers.py written the way a JVM team would with Confluent Parallel Consumer:
 * per-key order, up to 1,000 records in flight, each POSTed with Vert.x's non-blocking WebClient
 * (the module's own HTTP path), its result produced before the record counts as done, offsets
 * committed by Parallel Consumer in the background (periodic asynchronous consumer commits).
 *
 * <p>Usage: java -jar peer.jar --api URL --commands TOPIC --results TOPIC --group GROUP (broker
 * from CONVOAI_KAFKA_BOOTSTRAP, as the Python peers).
 */
public final class Peer {
  /** Records in flight: the worker's CONVOAI_MAX_IN_FLIGHT in the benchmark (and peers.LIMIT). */
  static final int LIMIT = 1_000;

  private Peer() {}

  public static void main(String[] argv) {
    Map<String, String> args = options(argv);
    exitWithParent();
    String bootstrap = System.getenv().getOrDefault("CONVOAI_KAFKA_BOOTSTRAP", "127.0.0.1:9092");

    Properties consumer = new Properties();
    consumer.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    consumer.put(ConsumerConfig.GROUP_ID_CONFIG, args.get("group"));
    consumer.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    consumer.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    // String keys: KEY ordering groups records by key equality (a byte[] compares by identity)
    consumer.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
    consumer.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
    Properties producer = new Properties();
    producer.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    producer.put(ProducerConfig.ACKS_CONFIG, "all");
    producer.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
    producer.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class);

    ParallelConsumerOptions<String, byte[]> settings =
        ParallelConsumerOptions.<String, byte[]>builder()
            .ordering(ProcessingOrder.KEY)
            .maxConcurrency(LIMIT)
            .commitMode(CommitMode.PERIODIC_CONSUMER_ASYNCHRONOUS)
            .consumer(new KafkaConsumer<>(consumer))
            .build();
    // the module sizes its WebClient's connection pool to maxConcurrency (peers.POOL is 1,000 too)
    VertxParallelStreamProcessor<String, byte[]> processor =
        VertxParallelStreamProcessor.createEosStreamProcessor(settings);
    Speak speak = new Speak(args.get("api"), args.get("results"), new KafkaProducer<>(producer));
    processor.subscribe(List.of(args.get("commands")));
    processor.vertxHttpWebClient(
        (web, context) -> speak.run(web, context.getSingleConsumerRecord()), sent -> {});
  }

  /** `--name value` pairs; all four are required. */
  static Map<String, String> options(String[] argv) {
    Map<String, String> found = new HashMap<>();
    for (int i = 0; i + 1 < argv.length; i += 2) {
      if (!argv[i].startsWith("--")) {
        throw new IllegalArgumentException("expected --name value pairs, got " + argv[i]);
      }
      found.put(argv[i].substring(2), argv[i + 1]);
    }
    for (String name : List.of("api", "commands", "results", "group")) {
      if (!found.containsKey(name)) {
        throw new IllegalArgumentException("missing --" + name);
      }
    }
    return found;
  }

  /** End once the parent is gone, so no benchmark process outlives its run (devtools.local). */
  static void exitWithParent() {
    long parent = ProcessHandle.current().parent().map(ProcessHandle::pid).orElse(-1L);
    Thread watch =
        new Thread(
            () -> {
              while (ProcessHandle.current().parent().map(ProcessHandle::pid).orElse(-1L)
                  == parent) {
                try {
                  Thread.sleep(500);
                } catch (InterruptedException e) {
                  return;
                }
              }
              Runtime.getRuntime().halt(0);
            },
            "exit-with-parent");
    watch.setDaemon(true);
    watch.start();
  }
}
