export * from './web-app';
export * from './web-code';
export * from './web-endpoint';
export * from './warm-web-function';
export * from './warmer';
