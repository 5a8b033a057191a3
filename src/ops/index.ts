// The differentiable op set, grouped by file. Model code imports ops from here.

export * from './elementwise.js';
export * from './movement.js';
export * from './reduce.js';
export * from './matmul.js';
export * from './scaled-linear.js';
export * from './softmax.js';
export * from './norm.js';
export * from './embedding.js';
export * from './attention.js';
export * from './loss.js';
export * from './rope.js';
export * from './dropout.js';
export * from './conv.js';
export * from './linear-cross-entropy.js';
