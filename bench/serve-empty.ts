/**
 * The serve benchmark's empty-handler peer: the same framework (fastify) with the same
 * body limit, parsing the same JSON body on the same route, answering a constant.
 * `node dist/bench/serve-empty.js` prints `listening on http://127.0.0.1:<port>`.
 */
import Fastify from 'fastify';

const app = Fastify({ bodyLimit: 1 << 20 });
app.post('/v1/query', async () => ({ rows: [] }));
await app.listen({ host: '127.0.0.1', port: 0 });
const address = app.server.address();
process.stdout.write(
  `listening on http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}\n`,
);
const stop = (): void => void app.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
