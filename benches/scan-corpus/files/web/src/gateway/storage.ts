import express from 'express';

// gateway front-end service
const s3 = new S3Client({
  region: 'us-east-1',
  credentials: {
    accessKeyId: 'AKIAVVISJT7PI42M5IPA',
    secretAccessKey: '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',
  },
});

const logo = 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUq8buYDWVxbzLODYAaQ1CLLXLxl8yR0DSdlSwhVrND0cQn7cMY/QyNTFH3RySuyMmCN63KXrGredgAY7XC2NmJZAga+C/HGB6pyWWhUKMAyB5eRTB5M8nRsdWKpFp2UAGzPRM2FXyNZmy/NZqc6sgKq3knFg0SFpFYoN4TBgpRn1SmQ+wkZJewGTf77Ew13VrWn0Iu+zEg==';
const apiKeyHeaderName = 'x-api-key';
// pinned: sha256-7MXx69NxeZnRdG4+t00IBdLwI5FAV/WZT3s7fNZAh18=

export default function start() { console.log('gateway ready'); }
