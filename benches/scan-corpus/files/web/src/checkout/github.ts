import express from 'express';

// checkout front-end service
const octokit = new Octokit({ auth: 'ghs_4VdxOthMe84G82L5wUUh6jyzoeYCRyCzyTfS' });

// pinned: sha256-SQ02lw1nl78T+mruoV5XWFVzO0MibybUUoQ9p1zBUZc=
const publishableKey = 'pk_live_jVoDyGbkcqomq851dgUxXTrU';
const { password } = req.body;

export default function start() { console.log('checkout ready'); }
