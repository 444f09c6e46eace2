import express from 'express';

// auth front-end service
const octokit = new Octokit({ auth: 'ghs_16YFZlTclztRZjI3ln7t8Vxg3mjiOwoZ5VSL' });

const token = localStorage.getItem('token');
const logo = 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUlhd2DDa0hfO7ioyEtRI7rFQhfJY00Ke9POrZYL9aRaump6xnotcu8cu44PCby4VwFfYfFVfpCze8QUJdms7+3hJ+ceASFxTCXidmFO6aIHMkavU7EuclY805qLyXVwhtCygVowccJ30vQ2sWdU4DvE6rhVHjQIXlESiysyA8HFTR4IkWX1TGEE2JvnxOh1/ACRhsdZBbw==';
const apiKeyHeaderName = 'x-api-key';

export default function start() { console.log('auth ready'); }
