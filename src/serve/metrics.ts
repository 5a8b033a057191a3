// GET /metrics: Prometheus text format through prom-client. Each server has its own Registry, not
// prom-client's global one, so several servers in one process (the tests, a library user) keep their
// counts apart. Names follow Prometheus' conventions (vera_ prefix, _total counters, _seconds); the
// queue, running and adapter gauges mirror vLLM's num_requests_waiting / num_requests_running /
// lora_requests_info, which the Kubernetes inference gateway reads (its metric names are configurable).

import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** What the gauges read at scrape time. */
export interface MetricsSource {
  /** Requests waiting for a batch. */
  queued(): number;
  /** Requests running now. */
  running(): number;
  /** Rows of the batch (the decode step) running now. */
  batchSize(): number;
  /** Adapters in memory. */
  loadedAdapters(): number;
  /** Most adapters held in memory (--max-loaded). */
  maxLoaded(): number;
  /** Adapters of the batch running now, and of the requests waiting. */
  runningAdapters(): string[];
  waitingAdapters(): string[];
}

export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'method' | 'route' | 'status'>;
  readonly duration: Histogram<'method' | 'route' | 'status'>;
  readonly promptTokens: Counter;
  readonly generationTokens: Counter;
  readonly adapterRequests: Counter<'adapter'>;

  constructor(source: MetricsSource) {
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'vera_http_requests_total',
      help: 'HTTP requests answered, by method, route and status code',
      labelNames: ['method', 'route', 'status'],
      registers,
    });
    this.duration = new Histogram({
      name: 'vera_http_request_duration_seconds',
      help: 'Time from a request to the end of its answer (a stream: its last event), by method, route and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    new Gauge({
      name: 'vera_num_requests_waiting',
      help: 'Requests waiting for a batch (a request with n choices counts n)',
      registers,
      collect() {
        this.set(source.queued());
      },
    });
    new Gauge({
      name: 'vera_num_requests_running',
      help: 'Requests (rows) running now',
      registers,
      collect() {
        this.set(source.running());
      },
    });
    new Gauge({
      name: 'vera_batch_size',
      help: 'Rows of the batch (decode step) running now; 0 when idle',
      registers,
      collect() {
        this.set(source.batchSize());
      },
    });
    this.promptTokens = new Counter({
      name: 'vera_prompt_tokens_total',
      help: 'Prompt (input) tokens of the requests run: generation, classification and embedding',
      registers,
    });
    this.generationTokens = new Counter({
      name: 'vera_generation_tokens_total',
      help: 'Tokens generated',
      registers,
    });
    new Gauge({
      name: 'vera_adapters_loaded',
      help: 'Adapters held in memory',
      registers,
      collect() {
        this.set(source.loadedAdapters());
      },
    });
    this.adapterRequests = new Counter({
      name: 'vera_adapter_requests_total',
      help: 'Requests run, by adapter ("__base__" for the base model alone)',
      labelNames: ['adapter'],
      registers,
    });
    // vLLM's lora_requests_info: one series whose labels list the adapters (comma-separated) and whose
    // value is the time of the scrape, so the newest series is the current state.
    new Gauge({
      name: 'vera_lora_requests_info',
      help: 'Adapters running and waiting (comma-separated labels, as vllm:lora_requests_info); value: scrape time',
      labelNames: ['running_lora_adapters', 'waiting_lora_adapters', 'max_lora'],
      registers,
      collect() {
        this.reset();
        this.set(
          {
            running_lora_adapters: source.runningAdapters().join(','),
            waiting_lora_adapters: source.waitingAdapters().join(','),
            max_lora: String(source.maxLoaded()),
          },
          Date.now() / 1000,
        );
      },
    });
  }

  /** One answered request. */
  observe(method: string, route: string, status: number, seconds: number): void {
    const labels = { method, route, status: String(status) };
    this.requests.inc(labels);
    this.duration.observe(labels, seconds);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
