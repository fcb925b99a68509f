export * from './web-app';
export * from './web-code';
export * from './web-endpoint';
export * from './warm-web-function';
export * from './warmer';
export * from './provisioned-auto-scaling';
export * from './warm-calendar';
