// Types of the CommonJS entry point: the same module as the ES entry point (see index.cjs).
export * from '../dist/ts/index.js';
