"""Build resources/facts.json (CounterFact schema) from the compact fact tables below.

Every fact here was written by the project (common-knowledge statements); none is copied from CounterFact.
`python resources/make_facts.py [OUT]` rewrites the file deterministically (default: next to this script).

A table row is "subject | true object" or "subject | true object | false object"; without an explicit false
object one is drawn (seeded by the subject) from the relation's other true objects, so it has the same type.
Record fields:
  prompt               the relation's first template            ("The capital of {} is")
  paraphrase_prompts   the next two templates, filled in        ("France's capital city is")
  neighborhood_prompts other facts (any relation) whose true object is this target_true, filled in
  attribute_prompts    other facts whose true object is this target_new, filled in
  generation_prompts   the relation's open prompts, filled in
Records are ordered so that relations interleave and a subject's first fact comes before its repeats.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

N_NEIGHBORS = 10  # at most this many neighborhood prompts per record
N_ATTRIBUTES = 5  # at most this many attribute prompts per record

# relation id → (templates: main + 2 paraphrases, generation prompts, rows)
RELATIONS: dict[str, tuple[list[str], list[str], str]] = {}

RELATIONS["P36"] = (  # capital
    ["The capital of {} is", "{}'s capital city is", "The capital city of {} is"],
    ["People who visit the capital of {} usually", "The government of {} sits in a city that"],
    """
France | Paris
Germany | Berlin
Italy | Rome
Spain | Madrid
Japan | Tokyo
China | Beijing
Russia | Moscow
Egypt | Cairo
Greece | Athens
Portugal | Lisbon
Austria | Vienna
Hungary | Budapest
Poland | Warsaw
Ireland | Dublin
Norway | Oslo
Sweden | Stockholm
Finland | Helsinki
Denmark | Copenhagen
Netherlands | Amsterdam
Belgium | Brussels
Czech Republic | Prague
Thailand | Bangkok
South Korea | Seoul
India | New Delhi
Kenya | Nairobi
Argentina | Buenos Aires
Peru | Lima
Chile | Santiago
Mexico | Mexico City
Canada | Ottawa
Australia | Canberra
Turkey | Ankara
Iran | Tehran
Iraq | Baghdad
Cuba | Havana
Vietnam | Hanoi
Indonesia | Jakarta
Philippines | Manila
Ukraine | Kyiv
Colombia | Bogotá
Venezuela | Caracas
Nigeria | Abuja
Switzerland | Bern
Brazil | Brasília
Saudi Arabia | Riyadh
Pakistan | Islamabad
Afghanistan | Kabul
Syria | Damascus
Lebanon | Beirut
Ethiopia | Addis Ababa
Morocco | Rabat
Romania | Bucharest
Bulgaria | Sofia
Serbia | Belgrade
Croatia | Zagreb
Iceland | Reykjavik
Scotland | Edinburgh
Wales | Cardiff
Jordan | Amman
Qatar | Doha
Nepal | Kathmandu
Bangladesh | Dhaka
Malaysia | Kuala Lumpur
England | London
Texas | Austin
Bavaria | Munich
Catalonia | Barcelona
Tuscany | Florence
Massachusetts | Boston
Colorado | Denver
""",
)

RELATIONS["P17"] = (  # country (landmarks, cities)
    ["{} is located in the country of", "{} can be found in the country of", "{} is a place in"],
    ["Tourists who travel to {} often", "The most famous thing about {} is"],
    """
Eiffel Tower | France
Colosseum | Italy
Taj Mahal | India
Great Wall | China
Mount Fuji | Japan
Kremlin | Russia
Sydney Opera House | Australia
Machu Picchu | Peru
Pyramids of Giza | Egypt
Acropolis | Greece
Sagrada Familia | Spain
Neuschwanstein Castle | Germany
Petra | Jordan
Angkor Wat | Cambodia
Christ the Redeemer | Brazil
CN Tower | Canada
Chichen Itza | Mexico
Stonehenge | England
Leaning Tower of Pisa | Italy
Brandenburg Gate | Germany
Alhambra | Spain
Mount Kilimanjaro | Tanzania
Toronto | Canada
Osaka | Japan
Munich | Germany
Milan | Italy
Barcelona | Spain
Lyon | France
Marseille | France
Shanghai | China
Mumbai | India
São Paulo | Brazil
Sydney | Australia
Istanbul | Turkey
Kyoto | Japan
Venice | Italy
Hamburg | Germany
Manchester | England
Rio de Janeiro | Brazil
Vancouver | Canada
Naples | Italy
Seville | Spain
Bordeaux | France
Krakow | Poland
Salzburg | Austria
Zurich | Switzerland
Geneva | Switzerland
Oxford | England
Liverpool | England
Melbourne | Australia
Hiroshima | Japan
Busan | South Korea
Saint Petersburg | Russia
Alexandria | Egypt
Dubai | United Arab Emirates
Lagos | Nigeria
Johannesburg | South Africa
Cape Town | South Africa
Montreal | Canada
Guadalajara | Mexico
Bollywood | India
""",
)

RELATIONS["P495"] = (  # country of origin
    ["The country where {} originated is", "{} originated in the country of", "{} comes from the country of"],
    ["The history of {} begins", "Many people around the world enjoy {} because"],
    """
sushi | Japan
pizza | Italy
pasta | Italy
tacos | Mexico
paella | Spain
kimchi | South Korea
fondue | Switzerland
tango | Argentina
samba | Brazil
flamenco | Spain
sauna | Finland
karate | Japan
taekwondo | South Korea
judo | Japan
sumo | Japan
kung fu | China
yoga | India
origami | Japan
haiku | Japan
anime | Japan
K-pop | South Korea
reggae | Jamaica
bossa nova | Brazil
sake | Japan
tequila | Mexico
champagne | France
feta | Greece
goulash | Hungary
pierogi | Poland
schnitzel | Austria
tea ceremony | Japan
baguette | France
lasagna | Italy
risotto | Italy
moussaka | Greece
dim sum | China
tapas | Spain
guacamole | Mexico
burrito | Mexico
ramen | Japan
tempura | Japan
gelato | Italy
opera | Italy
cricket | England
rugby | England
chess | India
porcelain | China
kebab | Turkey
baklava | Turkey
manga | Japan
Bollywood films | India
""",
)

RELATIONS["P37"] = (  # official language
    ["In {}, the official language is", "The official language of {} is", "The language spoken officially in {} is"],
    ["Children who grow up in {} learn to speak", "A traveller arriving in {} will hear people"],
    """
France | French
Germany | German
Italy | Italian
Spain | Spanish
Japan | Japanese
China | Chinese
Russia | Russian
Brazil | Portuguese
Portugal | Portuguese
Mexico | Spanish
Argentina | Spanish
Egypt | Arabic
Saudi Arabia | Arabic
Greece | Greek
Turkey | Turkish
Poland | Polish
Netherlands | Dutch
Sweden | Swedish
Norway | Norwegian
Finland | Finnish
Denmark | Danish
Hungary | Hungarian
Czech Republic | Czech
Iran | Persian
Israel | Hebrew
Thailand | Thai
Vietnam | Vietnamese
South Korea | Korean
Ukraine | Ukrainian
Austria | German
Chile | Spanish
Colombia | Spanish
Peru | Spanish
Australia | English
England | English
Romania | Romanian
Bulgaria | Bulgarian
Indonesia | Indonesian
Pakistan | Urdu
Bangladesh | Bengali
Iceland | Icelandic
Croatia | Croatian
Serbia | Serbian
Cuba | Spanish
Venezuela | Spanish
Mongolia | Mongolian
Quebec | French
Bavaria | German
Morocco | Arabic
Jamaica | English
""",
)

RELATIONS["P30"] = (  # continent
    ["{} is located on the continent of", "{} is part of the continent of", "{} belongs to the continent of"],
    ["The landscape of {} is", "Scientists who study {} have found"],
    """
Mount Kilimanjaro | Africa
Amazon River | South America
Sahara Desert | Africa
Gobi Desert | Asia
Mount Everest | Asia
Alps | Europe
Andes | South America
Nile | Africa
Danube | Europe
Himalayas | Asia
Rocky Mountains | North America
Kalahari Desert | Africa
Lake Victoria | Africa
Mississippi River | North America
Atacama Desert | South America
Yangtze River | Asia
Congo River | Africa
Mont Blanc | Europe
Patagonia | South America
Siberia | Asia
Scandinavia | Europe
Mount Kenya | Africa
Ganges | Asia
Rhine | Europe
Serengeti | Africa
Madagascar | Africa
Ghana | Africa
Zambia | Africa
Bolivia | South America
Paraguay | South America
Uruguay | South America
Ecuador | South America
Mali | Africa
Senegal | Africa
Laos | Asia
Cambodia | Asia
Uzbekistan | Asia
Slovakia | Europe
Estonia | Europe
Latvia | Europe
Lithuania | Europe
Belarus | Europe
Moldova | Europe
Albania | Europe
Namibia | Africa
Botswana | Africa
Zimbabwe | Africa
Angola | Africa
Tunisia | Africa
Sri Lanka | Asia
Myanmar | Asia
Slovenia | Europe
Luxembourg | Europe
Alaska | North America
Greenland | North America
Tasmania | Australia
Great Barrier Reef | Australia
Outback | Australia
""",
)

RELATIONS["P131"] = (  # located in the administrative unit (city)
    ["{} is a landmark in the city of", "{} is located in the city of", "{} is in the city of"],
    ["Visitors to {} often", "The view from {} is"],
    """
Louvre | Paris
Arc de Triomphe | Paris
Trevi Fountain | Rome
Pantheon | Rome
Big Ben | London
Buckingham Palace | London
Tower Bridge | London
Westminster Abbey | London
Reichstag | Berlin
Red Square | Moscow
Hermitage Museum | Saint Petersburg
Forbidden City | Beijing
Tiananmen Square | Beijing
Empire State Building | New York
Central Park | New York
Times Square | New York
Golden Gate Bridge | San Francisco
Alcatraz | San Francisco
Hollywood | Los Angeles
Space Needle | Seattle
White House | Washington
Lincoln Memorial | Washington
Prado Museum | Madrid
Parthenon | Athens
Hagia Sophia | Istanbul
Blue Mosque | Istanbul
Burj Khalifa | Dubai
Uffizi Gallery | Florence
Rialto Bridge | Venice
St. Mark's Basilica | Venice
Sistine Chapel | Vatican City
Gateway of India | Mumbai
Copacabana | Rio de Janeiro
Petronas Towers | Kuala Lumpur
Shibuya Crossing | Tokyo
Wall Street | New York
Broadway | New York
Statue of Liberty | New York
Rijksmuseum | Amsterdam
Anne Frank House | Amsterdam
Charles Bridge | Prague
Schönbrunn Palace | Vienna
Atomium | Brussels
Willis Tower | Chicago
French Quarter | New Orleans
Alamo | San Antonio
Kinkaku-ji | Kyoto
Table Mountain | Cape Town
Camp Nou | Barcelona
Old Trafford | Manchester
Anfield | Liverpool
San Siro | Milan
Santiago Bernabéu Stadium | Madrid
Fenway Park | Boston
Harvard University | Cambridge
Sorbonne | Paris
""",
)

RELATIONS["P19"] = (  # place of birth
    ["{} was born in the city of", "{} was born in the town of", "The birthplace of {} is"],
    ["{} grew up in a family that", "As a child, {} spent most days"],
    """
Wolfgang Amadeus Mozart | Salzburg
Ludwig van Beethoven | Bonn
William Shakespeare | Stratford-upon-Avon
Albert Einstein | Ulm
Pablo Picasso | Málaga
Leonardo da Vinci | Vinci
Galileo Galilei | Pisa
Dante Alighieri | Florence
Barack Obama | Honolulu
Elvis Presley | Tupelo
Martin Luther King Jr. | Atlanta
John Lennon | Liverpool
Paul McCartney | Liverpool
Marie Curie | Warsaw
Frida Kahlo | Mexico City
Charles Dickens | Portsmouth
Karl Marx | Trier
Johann Wolfgang von Goethe | Frankfurt
Steve Jobs | San Francisco
Bill Gates | Seattle
Jesus | Bethlehem
Muhammad | Mecca
Freddie Mercury | Zanzibar
Walt Disney | Chicago
Jimi Hendrix | Seattle
Lionel Messi | Rosario
Roger Federer | Basel
Novak Djokovic | Belgrade
Vladimir Putin | Leningrad
Julius Caesar | Rome
Donald Trump | New York
Adele | London
""",
)

RELATIONS["P27"] = (  # country of citizenship
    ["{} has the nationality of", "{} is a citizen of", "{} holds citizenship of"],
    ["{} is best known for", "In an interview, {} said that"],
    """
Lionel Messi | Argentina
Neymar | Brazil
Rafael Nadal | Spain
Angela Merkel | Germany
Emmanuel Macron | France
Justin Trudeau | Canada
Narendra Modi | India
Xi Jinping | China
Shinzo Abe | Japan
Jacinda Ardern | New Zealand
Zinedine Zidane | France
Mohamed Salah | Egypt
Usain Bolt | Jamaica
Shakira | Colombia
Celine Dion | Canada
Björk | Iceland
Akira Kurosawa | Japan
Hayao Miyazaki | Japan
Pedro Almodóvar | Spain
Federico Fellini | Italy
Ingmar Bergman | Sweden
Leo Tolstoy | Russia
Fyodor Dostoevsky | Russia
Gabriel García Márquez | Colombia
Pablo Neruda | Chile
Jorge Luis Borges | Argentina
Haruki Murakami | Japan
Recep Tayyip Erdoğan | Turkey
Volodymyr Zelensky | Ukraine
Kim Jong-un | North Korea
Benjamin Netanyahu | Israel
Fidel Castro | Cuba
Hugo Chávez | Venezuela
Jair Bolsonaro | Brazil
Luka Modrić | Croatia
Zlatan Ibrahimović | Sweden
Robert Lewandowski | Poland
Kylian Mbappé | France
Thomas Müller | Germany
Pope Francis | Argentina
Mikhail Gorbachev | Russia
Nelson Mandela | South Africa
Kofi Annan | Ghana
Jawaharlal Nehru | India
Mao Zedong | China
Charles de Gaulle | France
Otto von Bismarck | Germany
Giuseppe Garibaldi | Italy
Simón Bolívar | Venezuela
""",
)

RELATIONS["P106"] = (  # occupation
    ["{} is a famous", "{} is best known as a", "By profession, {} is a"],
    ["{} is known for", "On a typical day, {}"],
    """
Tom Hanks | actor
Leonardo DiCaprio | actor
Brad Pitt | actor
Taylor Swift | singer
Beyoncé | singer
Vincent van Gogh | painter
Claude Monet | painter
Rembrandt | painter
Johann Sebastian Bach | composer
Richard Wagner | composer
Stephen King | novelist
Albert Einstein | physicist
Isaac Newton | physicist
Charles Darwin | naturalist
Steven Spielberg | director
Alfred Hitchcock | director
Quentin Tarantino | director
Warren Buffett | investor
Gordon Ramsay | chef
Jamie Oliver | chef
Neil Armstrong | astronaut
Yuri Gagarin | cosmonaut
Frank Lloyd Wright | architect
Zaha Hadid | architect
Plato | philosopher
Socrates | philosopher
Immanuel Kant | philosopher
Friedrich Nietzsche | philosopher
Florence Nightingale | nurse
Amelia Earhart | pilot
Auguste Rodin | sculptor
Emily Dickinson | poet
Homer | poet
Carl Sagan | astronomer
Johannes Kepler | astronomer
Alan Turing | mathematician
Euclid | mathematician
Sherlock Holmes | detective
Indiana Jones | archaeologist
Hippocrates | physician
Oprah Winfrey | presenter
Ansel Adams | photographer
Michael Jackson | singer
Elton John | singer
Morgan Freeman | actor
Nicolas Cage | actor
Salvador Dalí | painter
Andy Warhol | artist
Giuseppe Verdi | composer
Pyotr Ilyich Tchaikovsky | composer
""",
)

RELATIONS["P641"] = (  # sport
    ["{} professionally plays the sport of", "The sport that {} plays is", "{} plays the sport of"],
    ["{} trains every morning by", "Fans of {} remember the game when"],
    """
Michael Jordan | basketball
LeBron James | basketball
Kobe Bryant | basketball
Shaquille O'Neal | basketball
Stephen Curry | basketball
David Beckham | soccer
Pelé | soccer
Wayne Rooney | soccer
Serena Williams | tennis
Venus Williams | tennis
Andy Murray | tennis
Maria Sharapova | tennis
Tiger Woods | golf
Jack Nicklaus | golf
Rory McIlroy | golf
Tom Brady | football
Peyton Manning | football
Babe Ruth | baseball
Derek Jeter | baseball
Wayne Gretzky | hockey
Sidney Crosby | hockey
Michael Phelps | swimming
Muhammad Ali | boxing
Mike Tyson | boxing
Sachin Tendulkar | cricket
Virat Kohli | cricket
Los Angeles Lakers | basketball
Chicago Bulls | basketball
Boston Celtics | basketball
Manchester United | soccer
Real Madrid | soccer
FC Barcelona | soccer
Juventus | soccer
New York Yankees | baseball
Boston Red Sox | baseball
Dallas Cowboys | football
New England Patriots | football
Toronto Maple Leafs | hockey
Montreal Canadiens | hockey
Dirk Nowitzki | basketball
Yao Ming | basketball
Magic Johnson | basketball
Larry Bird | basketball
Kareem Abdul-Jabbar | basketball
Steffi Graf | tennis
Pete Sampras | tennis
Bjorn Borg | tennis
Manny Pacquiao | boxing
Floyd Mayweather | boxing
Ronaldinho | soccer
""",
)

RELATIONS["P413"] = (  # position played
    ["{} plays in the position of", "On the field, {} plays as a", "The position of {} is"],
    ["{} helped the team win by", "During the match, {}"],
    """
Tom Brady | quarterback
Peyton Manning | quarterback
Patrick Mahomes | quarterback
Aaron Rodgers | quarterback
Joe Montana | quarterback
Manuel Neuer | goalkeeper
Gianluigi Buffon | goalkeeper
Iker Casillas | goalkeeper
Oliver Kahn | goalkeeper
Lev Yashin | goalkeeper
Sergio Ramos | defender
Paolo Maldini | defender
Franz Beckenbauer | defender
Stephen Curry | point guard
Magic Johnson | point guard
Derek Jeter | shortstop
Clayton Kershaw | pitcher
Nolan Ryan | pitcher
Thierry Henry | forward
Harry Kane | forward
""",
)

RELATIONS["P176"] = (  # manufacturer
    ["The company that makes {} is", "The manufacturer of {} is", "{} is made by"],
    ["The design of {} is", "Customers who bought {} said"],
    """
iPhone | Apple
iPad | Apple
MacBook | Apple
iPod | Apple
Corolla | Toyota
Camry | Toyota
Prius | Toyota
Civic | Honda
Accord | Honda
Mustang | Ford
F-150 | Ford
Model S | Tesla
Model 3 | Tesla
Golf | Volkswagen
Beetle | Volkswagen
Passat | Volkswagen
911 | Porsche
Corvette | Chevrolet
Camaro | Chevrolet
PlayStation | Sony
Walkman | Sony
Xbox | Microsoft
Surface | Microsoft
Wii | Nintendo
Game Boy | Nintendo
Kindle | Amazon
Pixel | Google
Galaxy | Samsung
ThinkPad | Lenovo
Big Mac | McDonald's
Sprite | Coca-Cola
Fanta | Coca-Cola
KitKat | Nestlé
Pentium | Intel
GeForce | Nvidia
Ryzen | AMD
A380 | Airbus
Model T | Ford
Range Rover | Land Rover
""",
)

RELATIONS["P178"] = (  # developer
    ["The company that developed {} is", "{} is a product developed by", "The developer of {} is"],
    ["Users of {} often complain that", "The latest version of {}"],
    """
Windows | Microsoft
Android | Google
iOS | Apple
macOS | Apple
Photoshop | Adobe
Excel | Microsoft
PowerPoint | Microsoft
Chrome | Google
Firefox | Mozilla
Safari | Apple
Gmail | Google
Outlook | Microsoft
Siri | Apple
Alexa | Amazon
Cortana | Microsoft
ChatGPT | OpenAI
TensorFlow | Google
PyTorch | Facebook
React | Facebook
Minecraft | Mojang
Fortnite | Epic Games
World of Warcraft | Blizzard
Grand Theft Auto | Rockstar Games
Super Mario Bros. | Nintendo
The Legend of Zelda | Nintendo
Halo | Bungie
The Sims | Maxis
Acrobat Reader | Adobe
Internet Explorer | Microsoft
Google Maps | Google
Visual Studio | Microsoft
Swift | Apple
C# | Microsoft
Go programming language | Google
Java | Sun Microsystems
Linux | Linus Torvalds
Unix | Bell Labs
Angry Birds | Rovio
Pac-Man | Namco
""",
)

RELATIONS["P127"] = (  # owned by
    ["{} is owned by", "{} is a subsidiary of", "The owner of {} is"],
    ["Since its acquisition, {} has", "Employees of {} say that"],
    """
YouTube | Google
Instagram | Facebook
WhatsApp | Facebook
LinkedIn | Microsoft
GitHub | Microsoft
Skype | Microsoft
Pixar | Disney
Marvel Studios | Disney
Lucasfilm | Disney
ESPN | Disney
Whole Foods | Amazon
Twitch | Amazon
Audi | Volkswagen
Lamborghini | Volkswagen
Bentley | Volkswagen
Jaguar | Tata Motors
Land Rover | Tata Motors
Volvo Cars | Geely
Rolls-Royce Motor Cars | BMW
Mini | BMW
DeepMind | Google
Waymo | Google
Fitbit | Google
Oculus | Facebook
Minecraft | Microsoft
Zappos | Amazon
IMDb | Amazon
ABC | Disney
Hulu | Disney
""",
)

RELATIONS["P159"] = (  # headquarters location
    ["The headquarters of {} are located in the city of", "{} is headquartered in the city of", "{} is based in the city of"],
    ["The employees of {} often", "The company {} announced that"],
    """
Apple | Cupertino
Google | Mountain View
Microsoft | Redmond
Amazon | Seattle
Facebook | Menlo Park
Intel | Santa Clara
Nvidia | Santa Clara
Sony | Tokyo
Nintendo | Kyoto
Samsung | Seoul
BMW | Munich
Siemens | Munich
Volkswagen | Wolfsburg
Mercedes-Benz | Stuttgart
Porsche | Stuttgart
Nokia | Espoo
Coca-Cola | Atlanta
Delta Air Lines | Atlanta
McDonald's | Chicago
Walmart | Bentonville
Starbucks | Seattle
Ford | Dearborn
General Motors | Detroit
Goldman Sachs | New York
BBC | London
HSBC | London
Deutsche Bank | Frankfurt
Fiat | Turin
United Nations | New York
NATO | Brussels
European Union | Brussels
FIFA | Zurich
International Olympic Committee | Lausanne
World Health Organization | Geneva
Red Cross | Geneva
CERN | Geneva
UNESCO | Paris
OPEC | Vienna
Interpol | Lyon
European Central Bank | Frankfurt
Disney | Burbank
Adidas | Herzogenaurach
""",
)

RELATIONS["P740"] = (  # location of formation
    ["The band {} was formed in the city of", "{} is a band from the city of", "{} was formed in the city of"],
    ["The first album by {} was", "Critics described the music of {} as"],
    """
The Beatles | Liverpool
The Rolling Stones | London
Queen | London
Pink Floyd | London
Led Zeppelin | London
U2 | Dublin
ABBA | Stockholm
AC/DC | Sydney
Nirvana | Aberdeen
Pearl Jam | Seattle
Metallica | Los Angeles
The Doors | Los Angeles
Red Hot Chili Peppers | Los Angeles
Guns N' Roses | Los Angeles
Oasis | Manchester
The Smiths | Manchester
Coldplay | London
Arctic Monkeys | Sheffield
Kraftwerk | Düsseldorf
Rammstein | Berlin
BTS | Seoul
Daft Punk | Paris
Aerosmith | Boston
Kiss | New York
Ramones | New York
The Strokes | New York
Beastie Boys | New York
Black Sabbath | Birmingham
Duran Duran | Birmingham
Foo Fighters | Seattle
Soundgarden | Seattle
Scorpions | Hanover
""",
)

RELATIONS["P449"] = (  # original broadcaster
    ["{} was originally broadcast on", "{} first aired on", "The network that first aired {} is"],
    ["The final season of {}", "Viewers of {} loved the episode where"],
    """
Friends | NBC
Seinfeld | NBC
The Office | NBC
Saturday Night Live | NBC
Breaking Bad | AMC
Mad Men | AMC
The Walking Dead | AMC
Game of Thrones | HBO
The Sopranos | HBO
The Wire | HBO
Sex and the City | HBO
The Simpsons | Fox
Family Guy | Fox
The X-Files | Fox
American Idol | Fox
Stranger Things | Netflix
House of Cards | Netflix
The Crown | Netflix
Lost | ABC
Grey's Anatomy | ABC
Desperate Housewives | ABC
The Big Bang Theory | CBS
How I Met Your Mother | CBS
NCIS | CBS
Doctor Who | BBC
Sherlock | BBC
South Park | Comedy Central
SpongeBob SquarePants | Nickelodeon
The Mandalorian | Disney+
Top Gear | BBC
""",
)

RELATIONS["P140"] = (  # religion
    ["{} is associated with the religion of", "The religion of {} is", "{} belongs to the religion of"],
    ["Believers say that {}", "The meaning of {} is"],
    """
Quran | Islam
Bible | Christianity
Torah | Judaism
Bhagavad Gita | Hinduism
Vedas | Hinduism
Talmud | Judaism
Ramadan | Islam
Hanukkah | Judaism
Diwali | Hinduism
Christmas | Christianity
Easter | Christianity
Passover | Judaism
Vesak | Buddhism
Mecca | Islam
Varanasi | Hinduism
Golden Temple | Sikhism
Western Wall | Judaism
Kaaba | Islam
Bodh Gaya | Buddhism
Dalai Lama | Buddhism
Pope | Christianity
Guru Nanak | Sikhism
Gautama Buddha | Buddhism
Prophet Muhammad | Islam
Moses | Judaism
Martin Luther | Christianity
Rabbi | Judaism
Imam | Islam
Zen | Buddhism
Eid al-Fitr | Islam
""",
)

RELATIONS["P20"] = (  # place of death
    ["{} died in the city of", "{} passed away in the city of", "The place where {} died is"],
    ["In the last years of life, {}", "After the death of {}, people"],
    """
Mozart | Vienna
Beethoven | Vienna
Elvis Presley | Memphis
Michael Jackson | Los Angeles
John Lennon | New York
Sigmund Freud | London
Karl Marx | London
Princess Diana | Paris
Jim Morrison | Paris
Oscar Wilde | Paris
Frédéric Chopin | Paris
Kurt Cobain | Seattle
Jimi Hendrix | London
Abraham Lincoln | Washington
John F. Kennedy | Dallas
Martin Luther King Jr. | Memphis
Mahatma Gandhi | New Delhi
Joseph Stalin | Moscow
Julius Caesar | Rome
Alexander the Great | Babylon
Adolf Hitler | Berlin
Dante Alighieri | Ravenna
Leonardo da Vinci | Amboise
Michelangelo | Rome
Albert Einstein | Princeton
Freddie Mercury | London
""",
)

RELATIONS["P103"] = (  # native language
    ["The native language of {} is", "The mother tongue of {} is", "{} grew up speaking"],
    ["{} wrote in a letter that", "Most of the work of {}"],
    """
Victor Hugo | French
Voltaire | French
Molière | French
Albert Camus | French
Jean-Paul Sartre | French
Franz Kafka | German
Thomas Mann | German
Friedrich Schiller | German
Hermann Hesse | German
Umberto Eco | Italian
Luciano Pavarotti | Italian
Silvio Berlusconi | Italian
Federico García Lorca | Spanish
Miguel de Cervantes | Spanish
Anton Chekhov | Russian
Alexander Pushkin | Russian
Vladimir Lenin | Russian
Hans Christian Andersen | Danish
Henrik Ibsen | Norwegian
August Strindberg | Swedish
Astrid Lindgren | Swedish
Luís de Camões | Portuguese
José Saramago | Portuguese
Paulo Coelho | Portuguese
Yukio Mishima | Japanese
Rabindranath Tagore | Bengali
Orhan Pamuk | Turkish
Naguib Mahfouz | Arabic
Nikos Kazantzakis | Greek
Adam Mickiewicz | Polish
Lech Wałęsa | Polish
Sándor Petőfi | Hungarian
Jean-Jacques Rousseau | French
Marcel Proust | French
Charles Baudelaire | French
Giacomo Puccini | Italian
Bertolt Brecht | German
""",
)

RELATIONS["P50"] = (  # author
    ["The book {} was written by", "{} was written by", "{} is a novel by"],
    ["The main character of {}", "Readers of {} often"],
    """
Hamlet | William Shakespeare
Romeo and Juliet | William Shakespeare
Macbeth | William Shakespeare
Pride and Prejudice | Jane Austen
Emma | Jane Austen
War and Peace | Leo Tolstoy
Anna Karenina | Leo Tolstoy
Crime and Punishment | Fyodor Dostoevsky
Don Quixote | Miguel de Cervantes
The Odyssey | Homer
The Iliad | Homer
Divine Comedy | Dante Alighieri
Les Misérables | Victor Hugo
Nineteen Eighty-Four | George Orwell
Animal Farm | George Orwell
The Great Gatsby | F. Scott Fitzgerald
Moby-Dick | Herman Melville
Oliver Twist | Charles Dickens
A Christmas Carol | Charles Dickens
The Hobbit | J. R. R. Tolkien
The Lord of the Rings | J. R. R. Tolkien
Harry Potter | J. K. Rowling
On the Origin of Species | Charles Darwin
Das Kapital | Karl Marx
The Communist Manifesto | Karl Marx
Frankenstein | Mary Shelley
Dracula | Bram Stoker
The Adventures of Tom Sawyer | Mark Twain
Adventures of Huckleberry Finn | Mark Twain
Ulysses | James Joyce
The Old Man and the Sea | Ernest Hemingway
One Hundred Years of Solitude | Gabriel García Márquez
The Little Prince | Antoine de Saint-Exupéry
Alice's Adventures in Wonderland | Lewis Carroll
Gulliver's Travels | Jonathan Swift
Robinson Crusoe | Daniel Defoe
The Catcher in the Rye | J. D. Salinger
To Kill a Mockingbird | Harper Lee
The Republic | Plato
The Prince | Niccolò Machiavelli
A Brief History of Time | Stephen Hawking
""",
)

RELATIONS["P112"] = (  # founded by
    ["The founder of {} is", "{} was founded by", "{} was started by"],
    ["The early days of {} were", "The first office of {}"],
    """
Microsoft | Bill Gates
Facebook | Mark Zuckerberg
Amazon | Jeff Bezos
SpaceX | Elon Musk
Virgin Group | Richard Branson
Wikipedia | Jimmy Wales
Apple | Steve Jobs
Scouting | Robert Baden-Powell
Scientology | L. Ron Hubbard
Methodism | John Wesley
Lutheranism | Martin Luther
Sikhism | Guru Nanak
Buddhism | Siddhartha Gautama
Islam | Muhammad
Christianity | Jesus
Mormonism | Joseph Smith
Communism | Karl Marx
Twitter | Jack Dorsey
Rome | Romulus
Alexandria | Alexander the Great
Constantinople | Constantine
St. Petersburg | Peter the Great
Pennsylvania | William Penn
Nobel Foundation | Alfred Nobel
""",
)

RELATIONS["P57"] = (  # director
    ["The film {} was directed by", "{} was directed by", "{} is a movie directed by"],
    ["The opening scene of {}", "Critics praised {} for"],
    """
Titanic | James Cameron
Avatar | James Cameron
The Terminator | James Cameron
Jaws | Steven Spielberg
E.T. the Extra-Terrestrial | Steven Spielberg
Jurassic Park | Steven Spielberg
Schindler's List | Steven Spielberg
Psycho | Alfred Hitchcock
Vertigo | Alfred Hitchcock
The Birds | Alfred Hitchcock
The Godfather | Francis Ford Coppola
Apocalypse Now | Francis Ford Coppola
Pulp Fiction | Quentin Tarantino
Kill Bill | Quentin Tarantino
Star Wars | George Lucas
The Dark Knight | Christopher Nolan
Inception | Christopher Nolan
Interstellar | Christopher Nolan
Spirited Away | Hayao Miyazaki
My Neighbor Totoro | Hayao Miyazaki
2001: A Space Odyssey | Stanley Kubrick
The Shining | Stanley Kubrick
A Clockwork Orange | Stanley Kubrick
Taxi Driver | Martin Scorsese
Goodfellas | Martin Scorsese
Seven Samurai | Akira Kurosawa
Citizen Kane | Orson Welles
Forrest Gump | Robert Zemeckis
Back to the Future | Robert Zemeckis
Alien | Ridley Scott
Gladiator | Ridley Scott
Blade Runner | Ridley Scott
""",
)

RELATIONS["P38"] = (  # currency
    ["The official currency of {} is the", "The currency of {} is the", "In {}, people pay with the"],
    ["Prices in {} have", "Shopping in {} is"],
    """
Japan | yen
China | yuan
India | rupee
Russia | ruble
Mexico | peso
Brazil | real
Switzerland | franc
Poland | złoty
Sweden | krona
South Korea | won
Thailand | baht
Turkey | lira
Israel | shekel
South Africa | rand
Vietnam | dong
Germany | euro
France | euro
Italy | euro
Spain | euro
England | pound
Argentina | peso
Colombia | peso
Chile | peso
Philippines | peso
Pakistan | rupee
Denmark | krone
Norway | krone
Ukraine | hryvnia
Hungary | forint
Czech Republic | koruna
Saudi Arabia | riyal
Egypt | pound
Australia | dollar
Canada | dollar
New Zealand | dollar
Indonesia | rupiah
Malaysia | ringgit
Nigeria | naira
Bangladesh | taka
Iran | rial
""",
)

RELATIONS["P1303"] = (  # instrument
    ["{} is famous for playing the", "{} is a famous musician who plays the", "{} plays the"],
    ["The sound of {} on stage", "Young musicians who admire {}"],
    """
Jimi Hendrix | guitar
Eric Clapton | guitar
B.B. King | guitar
Jimmy Page | guitar
Slash | guitar
Carlos Santana | guitar
Louis Armstrong | trumpet
Miles Davis | trumpet
Dizzy Gillespie | trumpet
John Coltrane | saxophone
Charlie Parker | saxophone
Kenny G | saxophone
Yo-Yo Ma | cello
Pablo Casals | cello
Itzhak Perlman | violin
Niccolò Paganini | violin
Ringo Starr | drums
John Bonham | drums
Keith Moon | drums
Neil Peart | drums
Lang Lang | piano
Franz Liszt | piano
Glenn Gould | piano
Vladimir Horowitz | piano
Ravi Shankar | sitar
Flea | bass
Jaco Pastorius | bass
Andrés Segovia | guitar
Jean-Pierre Rampal | flute
""",
)

# Neighbour-only facts: more subjects whose true object is an object above. They never become records; they
# only fill neighborhood_prompts / attribute_prompts. "relation | object | subject; subject; ... [| template]"
# (without a template the relation's first one is used).
SUPPLEMENT = """
P131 | Abuja | Aso Rock; Nigerian National Mosque; Abuja National Stadium
P131 | Addis Ababa | Meskel Square; National Museum of Ethiopia; African Union Conference Center
P131 | Amman | Amman Citadel; King Abdullah I Mosque; Rainbow Street
P131 | Ankara | Anıtkabir; Kocatepe Mosque; Atakule Tower
P131 | Austin | Texas State Capitol; Lady Bird Lake; University of Texas at Austin
P131 | Baghdad | Al-Mustansiriya University; Al-Shaheed Monument; Firdos Square
P131 | Bangkok | Wat Arun; Wat Pho; Khao San Road; Chatuchak Market
P131 | Beirut | Pigeon Rocks; Hamra Street; Mohammad Al-Amin Mosque
P131 | Bern | Zytglogge; Federal Palace of Switzerland; Einsteinhaus
P131 | Bogotá | Museo del Oro; Monserrate; Botero Museum
P131 | Brasília | Palácio do Planalto; National Congress of Brazil; Palácio da Alvorada
P131 | Bucharest | Palace of the Parliament; Romanian Athenaeum; Herăstrău Park
P131 | Budapest | Hungarian Parliament Building; Széchenyi Chain Bridge; Buda Castle; Fisherman's Bastion
P131 | Buenos Aires | Casa Rosada; Teatro Colón; La Boca; Recoleta Cemetery; La Bombonera
P131 | Cairo | Egyptian Museum; Tahrir Square; Al-Azhar Mosque; Khan el-Khalili
P131 | Canberra | Australian War Memorial; Lake Burley Griffin; Parliament House of Australia
P131 | Caracas | Miraflores Palace; Central University of Venezuela; Parque del Este
P131 | Cardiff | Principality Stadium; Wales Millennium Centre; Senedd
P131 | Copenhagen | Tivoli Gardens; Nyhavn; Amalienborg; Christiansborg Palace; Little Mermaid statue
P131 | Damascus | Umayyad Mosque; Al-Hamidiyah Souq; Straight Street
P131 | Denver | Coors Field; Colorado State Capitol; Empower Field at Mile High
P131 | Dhaka | Lalbagh Fort; Ahsan Manzil; Jatiya Sangsad Bhaban
P131 | Doha | Museum of Islamic Art; Souq Waqif; Khalifa International Stadium
P131 | Edinburgh | Holyrood Palace; Royal Mile; Arthur's Seat; Scott Monument; Calton Hill
P131 | Hanoi | Hoan Kiem Lake; Ho Chi Minh Mausoleum; Temple of Literature
P131 | Havana | Malecón; El Capitolio; Hotel Nacional de Cuba
P131 | Helsinki | Suomenlinna; Temppeliaukio Church; Uspenski Cathedral
P131 | Islamabad | Faisal Mosque; Pakistan Monument; Daman-e-Koh
P131 | Jakarta | Monas; Istiqlal Mosque; Taman Mini Indonesia Indah
P131 | Kabul | Gardens of Babur; Darul Aman Palace
P131 | Kathmandu | Swayambhunath; Boudhanath; Pashupatinath Temple; Thamel
P131 | Kyiv | Maidan Nezalezhnosti; Khreshchatyk; Motherland Monument
P131 | Lima | Huaca Pucllana; Larco Museum; Miraflores district
P131 | Lisbon | Belém Tower; Jerónimos Monastery; Alfama; São Jorge Castle
P131 | Manila | Intramuros; Rizal Park; Malacañang Palace; Fort Santiago
P131 | Mexico City | Zócalo; Chapultepec Castle; Palacio de Bellas Artes; Estadio Azteca
P131 | Nairobi | Kenyatta International Conference Centre; Uhuru Park; Kibera
P131 | Oslo | Vigeland Park; Akershus Fortress; Holmenkollen; Karl Johans gate
P131 | Ottawa | Parliament Hill; Rideau Canal; Rideau Hall; National Gallery of Canada
P131 | Rabat | Hassan Tower; Kasbah of the Udayas; Mausoleum of Mohammed V
P131 | Reykjavik | Hallgrímskirkja; Harpa concert hall; Perlan
P131 | Riyadh | Kingdom Centre; Masmak Fort; Al Faisaliyah Center
P131 | Santiago | La Moneda Palace; Cerro San Cristóbal; Costanera Center
P131 | Sofia | Alexander Nevsky Cathedral; Vitosha Boulevard; Boyana Church; National Palace of Culture
P131 | Tehran | Azadi Tower; Milad Tower; Golestan Palace
P131 | Zagreb | Ban Jelačić Square; Museum of Broken Relationships; Maksimir Park; Dolac Market
P131 | Amsterdam | Van Gogh Museum; Dam Square; Vondelpark
P131 | Athens | Syntagma Square; Plaka; Temple of Olympian Zeus; Odeon of Herodes Atticus
P131 | Barcelona | Park Güell; La Rambla; Casa Batlló; Casa Milà
P131 | Beijing | Temple of Heaven; Summer Palace; Bird's Nest stadium
P131 | Belgrade | Kalemegdan; Church of Saint Sava; Knez Mihailova Street
P131 | Berlin | Checkpoint Charlie; Alexanderplatz; Museum Island
P131 | Boston | Faneuil Hall; Freedom Trail; TD Garden
P131 | Brussels | Grand Place; Manneken Pis
P131 | Chicago | Wrigley Field; Navy Pier; Magnificent Mile
P131 | Dublin | Trinity College; Guinness Storehouse; Temple Bar; O'Connell Street
P131 | Florence | Ponte Vecchio; Palazzo Vecchio; Boboli Gardens
P131 | Frankfurt | Römer; Main Tower; Senckenberg Museum
P131 | Geneva | Jet d'Eau; Palais des Nations
P131 | Istanbul | Topkapı Palace; Galata Tower; Bosphorus Bridge; Dolmabahçe Palace
P131 | Kuala Lumpur | Sultan Abdul Samad Building; Petaling Street; Merdeka 118
P131 | Kyoto | Kiyomizu-dera; Fushimi Inari Taisha; Gion; Ryōan-ji
P131 | Liverpool | Albert Dock; Cavern Club; Goodison Park
P131 | Madrid | Puerta del Sol; Retiro Park; Royal Palace of Madrid
P131 | Manchester | Etihad Stadium; Piccadilly Gardens; John Rylands Library
P131 | Moscow | St. Basil's Cathedral; Bolshoi Theatre; Lenin's Mausoleum; Gorky Park
P131 | Munich | Marienplatz; Allianz Arena; Englischer Garten; Hofbräuhaus
P131 | New Delhi | India Gate; Rashtrapati Bhavan; Connaught Place
P131 | Prague | Old Town Square; Wenceslas Square; St. Vitus Cathedral
P131 | Rome | Roman Forum; Spanish Steps; Piazza Navona; Castel Sant'Angelo; Circus Maximus
P131 | San Francisco | Fisherman's Wharf; Coit Tower; Transamerica Pyramid
P131 | Seoul | Gyeongbokgung; Myeongdong; Bukchon Hanok Village; Changdeokgung
P131 | Stockholm | Vasa Museum; Gamla stan; Skansen
P131 | Tokyo | Senso-ji; Meiji Shrine; Akihabara; Ginza
P131 | Venice | Doge's Palace; Grand Canal; Bridge of Sighs
P131 | Vienna | Hofburg; Belvedere Palace; Prater; St. Stephen's Cathedral
P131 | Warsaw | Palace of Culture and Science; Łazienki Park; Wilanów Palace
P131 | Washington | United States Capitol; Smithsonian Institution; Jefferson Memorial
P131 | Milan | Galleria Vittorio Emanuele II; La Scala; Sforza Castle
P131 | Mumbai | Chhatrapati Shivaji Terminus; Taj Mahal Palace Hotel; Juhu Beach
P131 | New Orleans | Bourbon Street; Jackson Square; Caesars Superdome
P131 | Rio de Janeiro | Sugarloaf Mountain; Maracanã Stadium; Ipanema
P131 | Saint Petersburg | Winter Palace; Peter and Paul Fortress; Nevsky Prospect
P131 | San Antonio | River Walk; Tower of the Americas
P131 | Vatican City | St. Peter's Basilica; Apostolic Palace; St. Peter's Square
P131 | Dubai | Palm Jumeirah; Burj Al Arab; Museum of the Future
P131 | Cape Town | V&A Waterfront; Kirstenbosch; Bo-Kaap
P131 | Cambridge | Massachusetts Institute of Technology; Harvard Yard; Harvard Square
P131 | Sydney | Bondi Beach; Darling Harbour; Taronga Zoo
P131 | Mountain View | Googleplex; Computer History Museum; Shoreline Amphitheatre
P131 | Cupertino | Apple Park
P131 | Santa Clara | Levi's Stadium; Santa Clara University
P131 | Bentonville | Crystal Bridges Museum of American Art
P131 | Burbank | Warner Bros. Studios
P131 | Dearborn | The Henry Ford museum
P131 | Detroit | Comerica Park; Ford Field; Motown Museum
P131 | Lausanne | Olympic Museum
P131 | Lyon | Parc de la Tête d'Or; Basilica of Notre-Dame de Fourvière
P131 | Stuttgart | Mercedes-Benz Museum; Porsche Museum
P131 | Turin | Mole Antonelliana; Egyptian Museum of Turin
P131 | Wolfsburg | Autostadt
P131 | Zurich | Bahnhofstrasse; Grossmünster; Kunsthaus Zürich
P131 | Amboise | Clos Lucé
P131 | Babylon | Ishtar Gate
P131 | Bethlehem | Church of the Nativity; Manger Square
P131 | Bonn | Beethoven House
P131 | Dallas | Dealey Plaza; Reunion Tower
P131 | Düsseldorf | Königsallee
P131 | Hanover | Herrenhausen Gardens
P131 | Honolulu | Waikiki; Iolani Palace; Diamond Head
P131 | Mecca | Masjid al-Haram; Kaaba
P131 | Memphis | Graceland; Beale Street; National Civil Rights Museum
P131 | Pisa | Piazza dei Miracoli
P131 | Portsmouth | HMS Victory; Spinnaker Tower
P131 | Princeton | Institute for Advanced Study
P131 | Ravenna | Basilica of San Vitale; Mausoleum of Galla Placidia
P131 | Salzburg | Mirabell Palace; Getreidegasse
P131 | Stratford-upon-Avon | Royal Shakespeare Theatre; Anne Hathaway's Cottage
P131 | Trier | Porta Nigra
P131 | Zanzibar | Stone Town
P131 | Sheffield | Bramall Lane; Hillsborough Stadium
P131 | Aberdeen | Kurt Cobain Memorial Park
P159 | Redmond | Nintendo of America
P159 | Menlo Park | SRI International
P159 | Santa Clara | Applied Materials
P159 | Basel | Novartis; Roche; Bank for International Settlements
P159 | Herzogenaurach | Puma
P159 | Lausanne | Court of Arbitration for Sport
P159 | Turin | Juventus
P159 | Zurich | UBS; Swiss Re; Zurich Insurance Group
P159 | Munich | Allianz
P159 | Detroit | Little Caesars
P19 | Aberdeen | Kurt Cobain
P17 | Argentina | Mendoza; Ushuaia; Rosario
P17 | Austria | Hallstatt; Innsbruck; Graz; Vienna
P17 | Cambodia | Phnom Penh; Siem Reap; Tonlé Sap
P17 | Chile | Easter Island; Valparaíso; Torres del Paine
P17 | Colombia | Medellín; Cartagena de Indias; Cali; Barranquilla
P17 | Croatia | Dubrovnik; Plitvice Lakes; Hvar; Zagreb
P17 | Cuba | Havana; Varadero; Bay of Pigs
P17 | Egypt | Luxor; Aswan; Valley of the Kings; Suez Canal
P17 | Finland | Helsinki; Turku; Tampere; Rovaniemi
P17 | Ghana | Accra; Kumasi; Lake Volta
P17 | Greece | Santorini; Mykonos; Thessaloniki; Delphi
P17 | Hungary | Budapest; Lake Balaton; Debrecen
P17 | Iceland | Reykjavik; Blue Lagoon; Eyjafjallajökull
P17 | Israel | Tel Aviv; Haifa; Masada; Eilat
P17 | Jamaica | Kingston; Montego Bay; Ocho Rios
P17 | Jordan | Amman; Wadi Rum; Aqaba
P17 | New Zealand | Auckland; Wellington; Christchurch; Milford Sound; Queenstown
P17 | Nigeria | Abuja; Kano; Ibadan; Port Harcourt
P17 | North Korea | Pyongyang; Kaesong; Ryugyong Hotel
P17 | Peru | Cusco; Lima; Arequipa; Nazca Lines
P17 | Poland | Gdańsk; Wrocław; Poznań
P17 | Russia | Vladivostok; Kazan; Novosibirsk; Lake Baikal
P17 | South Africa | Durban; Pretoria; Kruger National Park
P17 | South Korea | Jeju Island; Incheon; Gyeongju
P17 | Sweden | Gothenburg; Malmö; Uppsala
P17 | Switzerland | Lucerne; Lausanne; Interlaken
P17 | Tanzania | Zanzibar; Dar es Salaam; Serengeti; Dodoma
P17 | Turkey | Cappadocia; Ephesus; Antalya; Izmir
P17 | Ukraine | Kyiv; Odesa; Lviv; Kharkiv
P17 | United Arab Emirates | Abu Dhabi; Sharjah; Palm Jumeirah
P17 | Venezuela | Caracas; Angel Falls; Maracaibo
P103 | Arabic | Gamal Abdel Nasser; Umm Kulthum; Mahmoud Darwish
P103 | Bengali | Satyajit Ray; Sheikh Mujibur Rahman; Kazi Nazrul Islam; Amartya Sen
P103 | Bulgarian | Hristo Stoichkov; Ivan Vazov; Grigor Dimitrov
P103 | Chinese | Confucius; Lu Xun; Deng Xiaoping; Yao Ming
P103 | Croatian | Luka Modrić; Marin Čilić; Davor Šuker; Goran Ivanišević
P103 | Czech | Václav Havel; Milan Kundera; Antonín Dvořák; Bedřich Smetana
P103 | Danish | Søren Kierkegaard; Niels Bohr; Karen Blixen; Lars von Trier
P103 | Dutch | Vincent van Gogh; Rembrandt; Johan Cruyff; Piet Mondrian
P103 | English | Charles Dickens; Abraham Lincoln; Jane Austen; Mark Twain
P103 | Finnish | Kimi Räikkönen; Alvar Aalto; Urho Kekkonen; Mika Häkkinen
P103 | Greek | Aristotle; Socrates; Plato; Archimedes
P103 | Hebrew | Yitzhak Rabin; Amos Oz; Gal Gadot
P103 | Hungarian | Viktor Orbán; Ferenc Puskás; Béla Bartók; Imre Kertész
P103 | Icelandic | Björk; Halldór Laxness; Vigdís Finnbogadóttir
P103 | Italian | Dante Alighieri; Giuseppe Verdi; Federico Fellini; Andrea Bocelli
P103 | Japanese | Akira Kurosawa; Hayao Miyazaki; Haruki Murakami; Shinzo Abe
P103 | Korean | Ban Ki-moon; Psy; Son Heung-min
P103 | Mongolian | Genghis Khan; Kublai Khan
P103 | Norwegian | Edvard Munch; Roald Amundsen; Edvard Grieg; Magnus Carlsen
P103 | Persian | Rumi; Hafez; Omar Khayyam; Ferdowsi
P103 | Polish | Frédéric Chopin; Marie Curie; Pope John Paul II; Robert Lewandowski
P103 | Portuguese | Cristiano Ronaldo; Pelé; Neymar; Fernando Pessoa; Vasco da Gama
P103 | Romanian | Nadia Comăneci; Mihai Eminescu; Gheorghe Hagi
P103 | Russian | Leo Tolstoy; Fyodor Dostoevsky; Yuri Gagarin; Pyotr Ilyich Tchaikovsky
P103 | Serbian | Novak Djokovic; Nikola Tesla; Vuk Karadžić
P103 | Swedish | Alfred Nobel; Greta Garbo; Carl Linnaeus; Greta Thunberg
P103 | Thai | Bhumibol Adulyadej; Thaksin Shinawatra; Tony Jaa
P103 | Turkish | Mustafa Kemal Atatürk; Nazım Hikmet; Recep Tayyip Erdoğan
P103 | Ukrainian | Taras Shevchenko; Lesya Ukrainka; Ivan Franko
P103 | Urdu | Mirza Ghalib
P103 | Vietnamese | Ho Chi Minh; Vo Nguyen Giap; Thich Nhat Hanh
P37 | Indonesian | Bali; Java; Sumatra | In {}, the official language is
P37 | Spanish | Andalusia; Canary Islands; Puerto Rico | In {}, the official language is
P38 | yen | Tokyo; Osaka; Hokkaido; Okinawa | In {}, people pay with the
P38 | baht | Bangkok; Phuket; Chiang Mai | In {}, people pay with the
P38 | dong | Hanoi; Ho Chi Minh City; Da Nang | In {}, people pay with the
P38 | forint | Budapest; Debrecen | In {}, people pay with the
P38 | franc | Liechtenstein; Zurich; Geneva | In {}, people pay with the
P38 | hryvnia | Kyiv; Odesa; Lviv | In {}, people pay with the
P38 | koruna | Prague; Brno | In {}, people pay with the
P38 | krona | Stockholm; Gothenburg; Malmö | In {}, people pay with the
P38 | krone | Copenhagen; Oslo; Greenland; Faroe Islands | In {}, people pay with the
P38 | lira | Istanbul; Ankara; Antalya | In {}, people pay with the
P38 | naira | Lagos; Abuja; Kano | In {}, people pay with the
P38 | rand | Johannesburg; Cape Town; Durban | In {}, people pay with the
P38 | real | Rio de Janeiro; São Paulo; Brasília | In {}, people pay with the
P38 | rial | Tehran; Oman; Yemen | In {}, people pay with the
P38 | ringgit | Kuala Lumpur; Penang; Sabah | In {}, people pay with the
P38 | riyal | Riyadh; Mecca; Qatar | In {}, people pay with the
P38 | ruble | Moscow; Saint Petersburg; Belarus | In {}, people pay with the
P38 | rupiah | Jakarta; Bali; Java | In {}, people pay with the
P38 | shekel | Tel Aviv; Jerusalem; Haifa | In {}, people pay with the
P38 | taka | Dhaka; Chittagong | In {}, people pay with the
P38 | won | Seoul; Busan; North Korea | In {}, people pay with the
P38 | yuan | Beijing; Shanghai; Shenzhen | In {}, people pay with the
P38 | złoty | Warsaw; Kraków; Gdańsk | In {}, people pay with the
P38 | rupee | Mumbai; Sri Lanka; Nepal; Mauritius | In {}, people pay with the
P38 | pound | London; Scotland; Wales; Lebanon | In {}, people pay with the
P38 | peso | Uruguay; Dominican Republic | In {}, people pay with the
P38 | dollar | Singapore; Hong Kong; Jamaica | In {}, people pay with the
P38 | euro | Netherlands; Belgium; Austria; Ireland; Finland; Greece | In {}, people pay with the
P106 | actor | Robert De Niro; Al Pacino; Denzel Washington; Johnny Depp
P106 | archaeologist | Howard Carter; Heinrich Schliemann; Lara Croft
P106 | architect | Le Corbusier; Frank Gehry; I. M. Pei; Antoni Gaudí
P106 | artist | Banksy; Keith Haring; Ai Weiwei
P106 | astronaut | Buzz Aldrin; John Glenn; Sally Ride; Chris Hadfield
P106 | astronomer | Edwin Hubble; Nicolaus Copernicus; Tycho Brahe; Galileo Galilei
P106 | chef | Julia Child; Anthony Bourdain; Wolfgang Puck; Paul Bocuse
P106 | composer | Wolfgang Amadeus Mozart; Frédéric Chopin; Antonio Vivaldi
P106 | cosmonaut | Valentina Tereshkova; Alexei Leonov; Sergei Krikalev
P106 | detective | Hercule Poirot; Miss Marple; Philip Marlowe; Sam Spade
P106 | director | Stanley Kubrick; Martin Scorsese; Christopher Nolan
P106 | investor | George Soros; Carl Icahn; Peter Lynch; Benjamin Graham
P106 | mathematician | Carl Friedrich Gauss; Leonhard Euler; Pierre de Fermat; Srinivasa Ramanujan
P106 | naturalist | Alexander von Humboldt; John Muir; Alfred Russel Wallace
P106 | novelist | Jane Austen; Charles Dickens; Leo Tolstoy; Toni Morrison
P106 | nurse | Clara Barton; Mary Seacole; Edith Cavell
P106 | photographer | Annie Leibovitz; Henri Cartier-Bresson; Dorothea Lange; Robert Capa
P106 | physician | Galen; Avicenna; Paracelsus; Albert Schweitzer
P106 | physicist | Niels Bohr; Richard Feynman; Max Planck; Stephen Hawking
P106 | pilot | Charles Lindbergh; Orville Wright; Chuck Yeager; Manfred von Richthofen
P106 | poet | Walt Whitman; Robert Frost; Lord Byron; John Keats
P106 | presenter | Jeremy Clarkson; Graham Norton; David Letterman
P106 | sculptor | Michelangelo; Donatello; Gian Lorenzo Bernini; Constantin Brâncuși
P106 | painter | Paul Cézanne; Edgar Degas; Pablo Picasso
P106 | philosopher | Aristotle; René Descartes; John Locke
P106 | singer | Whitney Houston; Frank Sinatra; Adele; Elvis Presley
P641 | baseball | Willie Mays; Hank Aaron; Shohei Ohtani; Los Angeles Dodgers
P641 | boxing | Joe Frazier; Sugar Ray Leonard; Rocky Marciano
P641 | cricket | Don Bradman; Shane Warne; Brian Lara; MS Dhoni
P641 | football | Joe Montana; Jerry Rice; Green Bay Packers; Pittsburgh Steelers
P641 | golf | Arnold Palmer; Phil Mickelson; Gary Player
P641 | hockey | Mario Lemieux; Alexander Ovechkin; Detroit Red Wings
P641 | swimming | Mark Spitz; Katie Ledecky; Ian Thorpe
P413 | goalkeeper | Peter Schmeichel; Petr Čech; Thibaut Courtois
P413 | quarterback | Dan Marino; John Elway; Brett Favre
P413 | defender | Virgil van Dijk; Fabio Cannavaro; Carles Puyol
P413 | forward | Erling Haaland; Karim Benzema; Romário
P413 | pitcher | Randy Johnson; Sandy Koufax; Roger Clemens
P413 | point guard | Chris Paul; Steve Nash; Isiah Thomas
P413 | shortstop | Cal Ripken Jr.; Ozzie Smith; Alex Rodriguez
P1303 | bass | Paul McCartney; Geddy Lee; Sting
P1303 | cello | Mstislav Rostropovich; Jacqueline du Pré
P1303 | flute | James Galway; Ian Anderson; Emmanuel Pahud
P1303 | piano | Frédéric Chopin; Elton John; Billy Joel; Arthur Rubinstein
P1303 | saxophone | Sonny Rollins; Stan Getz; Clarence Clemons
P1303 | sitar | Anoushka Shankar; Nikhil Banerjee
P1303 | trumpet | Wynton Marsalis; Chet Baker; Herb Alpert
P1303 | violin | Joshua Bell; Jascha Heifetz; Anne-Sophie Mutter; Yehudi Menuhin
P1303 | drums | Phil Collins; Dave Grohl; Travis Barker
P140 | Buddhism | Theravada; Shaolin Monastery; Borobudur
P140 | Christianity | Church of the Holy Sepulchre; Saint Peter; Lent
P140 | Hinduism | Holi; Shiva; Vishnu; Ganesha
P140 | Sikhism | Guru Granth Sahib; Vaisakhi; Khalsa
P30 | North America | Lake Superior; Yellowstone; Grand Canyon; Yukon
P449 | ABC | Modern Family; Good Morning America; Twin Peaks
P449 | AMC | Better Call Saul; Halt and Catch Fire; Hell on Wheels
P449 | BBC | Fawlty Towers; Monty Python's Flying Circus; Blackadder; EastEnders
P449 | CBS | I Love Lucy; The Good Wife; Survivor
P449 | Fox | Glee; Prison Break; Futurama
P449 | HBO | Succession; True Detective; Westworld
P449 | NBC | ER; Cheers; Parks and Recreation; The West Wing
P449 | Netflix | Squid Game; Orange Is the New Black; Narcos
P449 | Comedy Central | The Daily Show; Key & Peele; Chappelle's Show
P449 | Disney+ | WandaVision; Loki; Andor
P449 | Nickelodeon | Rugrats; Avatar: The Last Airbender; iCarly; Dora the Explorer
P176 | AMD | Radeon; Athlon; Threadripper; EPYC
P176 | Airbus | A320; A350; A330
P176 | Chevrolet | Impala; Silverado; Malibu; Tahoe
P176 | Coca-Cola | Dasani; Powerade; Minute Maid
P176 | Ford | Focus; Fiesta; Explorer; Bronco
P176 | Honda | CR-V; Fit; Gold Wing; NSX
P176 | Intel | Core i7; Xeon; Celeron; Itanium
P176 | Land Rover | Defender; Discovery; Evoque
P176 | Lenovo | IdeaPad; Legion; ThinkCentre
P176 | McDonald's | Happy Meal; McFlurry; Chicken McNuggets; Egg McMuffin
P176 | Nestlé | Nescafé; Nespresso; Smarties; Maggi
P176 | Nvidia | Tegra; Quadro; Jetson
P176 | Porsche | Cayenne; Boxster; Panamera; Macan
P176 | Samsung | Exynos; Galaxy Note; Galaxy Tab
P176 | Tesla | Model X; Model Y; Cybertruck; Powerwall
P176 | Toyota | Land Cruiser; Hilux; RAV4; Yaris
P176 | Sony | Bravia; Xperia; Cyber-shot; Aibo
P176 | Tata Motors | Nexon; Indica
P176 | Apple | iMac; AirPods; Mac Mini
P178 | Adobe | Illustrator; InDesign; Premiere Pro; Flash
P178 | Blizzard | StarCraft; Diablo; Overwatch; Hearthstone
P178 | Bungie | Destiny; Marathon; Myth
P178 | Epic Games | Unreal Engine; Unreal Tournament; Gears of War
P178 | Facebook | Messenger; React Native
P178 | Nintendo | Mario Kart; Donkey Kong; Metroid
P178 | Maxis | SimCity; Spore
P178 | Mozilla | Thunderbird; SpiderMonkey
P178 | Namco | Galaga; Tekken; Ridge Racer; Dig Dug
P178 | Rockstar Games | Red Dead Redemption; Max Payne; Bully
P178 | Rovio | Bad Piggies
P178 | Sun Microsystems | Solaris; SPARC; NetBeans
P178 | Linus Torvalds | Git
P178 | OpenAI | GPT-4; DALL-E; Sora; Whisper
P178 | Nvidia | CUDA
P178 | Bell Labs | C programming language
P127 | Geely | Lotus Cars; Polestar; Zeekr
P127 | BMW | Rolls-Royce; Husqvarna Motorcycles
P127 | Tata Motors | Tata Daewoo
P57 | Akira Kurosawa | Rashomon; Ran; Yojimbo; Ikiru
P57 | Alfred Hitchcock | Rear Window; North by Northwest; Rebecca
P57 | Christopher Nolan | Memento; Oppenheimer; Dunkirk
P57 | Francis Ford Coppola | The Godfather Part II; The Conversation; Bram Stoker's Dracula
P57 | George Lucas | American Graffiti; THX 1138
P57 | Hayao Miyazaki | Princess Mononoke; Howl's Moving Castle; Kiki's Delivery Service
P57 | James Cameron | Aliens; The Abyss; True Lies
P57 | Martin Scorsese | Raging Bull; The Departed; The Wolf of Wall Street; Mean Streets
P57 | Orson Welles | Touch of Evil; The Magnificent Ambersons; Chimes at Midnight
P57 | Quentin Tarantino | Reservoir Dogs; Django Unchained; Inglourious Basterds
P57 | Ridley Scott | Thelma & Louise; Black Hawk Down; The Martian
P57 | Robert Zemeckis | Who Framed Roger Rabbit; Cast Away; The Polar Express
P57 | Stanley Kubrick | Dr. Strangelove; Full Metal Jacket; Barry Lyndon; Eyes Wide Shut
P57 | Steven Spielberg | Saving Private Ryan; Close Encounters of the Third Kind; Raiders of the Lost Ark
P50 | Antoine de Saint-Exupéry | Night Flight; Wind, Sand and Stars
P50 | Bram Stoker | The Lair of the White Worm; The Jewel of Seven Stars
P50 | Charles Darwin | The Descent of Man; The Voyage of the Beagle
P50 | Charles Dickens | Great Expectations; David Copperfield; A Tale of Two Cities; Bleak House
P50 | Daniel Defoe | Moll Flanders; A Journal of the Plague Year
P50 | Dante Alighieri | La Vita Nuova; De vulgari eloquentia
P50 | Ernest Hemingway | A Farewell to Arms; For Whom the Bell Tolls; The Sun Also Rises
P50 | F. Scott Fitzgerald | Tender Is the Night; This Side of Paradise
P50 | Fyodor Dostoevsky | The Brothers Karamazov; The Idiot; Notes from Underground
P50 | Gabriel García Márquez | Love in the Time of Cholera; Chronicle of a Death Foretold
P50 | George Orwell | Homage to Catalonia; Down and Out in Paris and London
P50 | Harper Lee | Go Set a Watchman
P50 | Herman Melville | Bartleby, the Scrivener; Billy Budd; Typee
P50 | J. D. Salinger | Franny and Zooey; Nine Stories
P50 | J. K. Rowling | The Casual Vacancy; Fantastic Beasts and Where to Find Them
P50 | J. R. R. Tolkien | The Silmarillion; The Children of Húrin
P50 | James Joyce | Dubliners; Finnegans Wake; A Portrait of the Artist as a Young Man
P50 | Jane Austen | Sense and Sensibility; Persuasion; Mansfield Park; Northanger Abbey
P50 | Jonathan Swift | A Modest Proposal; A Tale of a Tub
P50 | Karl Marx | Grundrisse; Theses on Feuerbach
P50 | L. Ron Hubbard | Dianetics; Battlefield Earth
P50 | Leo Tolstoy | The Death of Ivan Ilyich; Resurrection
P50 | Lewis Carroll | Through the Looking-Glass; The Hunting of the Snark
P50 | Mark Twain | The Prince and the Pauper; A Connecticut Yankee in King Arthur's Court
P50 | Mary Shelley | The Last Man; Mathilda
P50 | Miguel de Cervantes | Novelas ejemplares; La Galatea
P50 | Niccolò Machiavelli | Discourses on Livy; Mandragola
P50 | Plato | Symposium; Phaedo; Timaeus; Meno
P50 | Stephen Hawking | The Universe in a Nutshell; The Grand Design
P50 | Victor Hugo | The Hunchback of Notre-Dame; Toilers of the Sea
P50 | William Shakespeare | Othello; King Lear; A Midsummer Night's Dream; The Tempest
P50 | Homer | Homeric Hymns
P112 | Bill Gates | Breakthrough Energy; TerraPower
P112 | Elon Musk | Neuralink; The Boring Company; Zip2
P112 | Jack Dorsey | Square
P112 | Jeff Bezos | Blue Origin
P112 | Jimmy Wales | Wikia
P112 | Richard Branson | Virgin Atlantic; Virgin Galactic; Virgin Records
P112 | Robert Baden-Powell | Girl Guides
P112 | Steve Jobs | NeXT
P112 | William Penn | Philadelphia
P112 | Mark Zuckerberg | FaceMash
P131 | Birmingham | Bullring; Villa Park; Cadbury World
P131 | Cupertino | De Anza College
P131 | Bonn | Museum Koenig; Bundeskunsthalle
P131 | Tupelo | Elvis Presley Birthplace
P131 | Wolfsburg | Volkswagen Arena
P50 | Martin Luther | Ninety-five Theses; On the Freedom of a Christian
P127 | Jeff Bezos | The Washington Post
P112 | Alfred Nobel | dynamite | The inventor of {} is
P112 | Peter the Great | Russian Navy
P131 | Ulm | Ulm Minster
P131 | Málaga | Picasso Museum Málaga
P131 | Vinci | Museo Leonardiano
P178 | Mojang | Minecraft Dungeons
P19 | Leningrad | Dmitry Medvedev
P19 | Rosario | Che Guevara
P159 | Espoo | Rovio Entertainment; Fortum
P112 | Muhammad | Quran | {} was revealed to the prophet
P112 | Jesus | Sermon on the Mount | The {} was delivered by
P112 | Siddhartha Gautama | Four Noble Truths | The {} were first taught by
P112 | Guru Nanak | Japji Sahib | {} was composed by
P112 | John Wesley | Charles Wesley | {}'s brother was
P112 | Joseph Smith | Book of Mormon | The {} was first published by
P112 | Romulus | Remus | {}'s twin brother was
P112 | Constantine | First Council of Nicaea | The {} was convened by the emperor
P112 | Alexander the Great | Bucephalus | {} was the horse of
"""


def rows(relation: str) -> list[tuple[str, str, str | None]]:
    """(subject, true object, false object or None) of a relation's table."""
    out = []
    for n, line in enumerate(RELATIONS[relation][2].strip().splitlines(), 1):
        parts = [p.strip() for p in line.split("|")]
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"make_facts.py: relation {relation}, row {n}: expected 'subject | true [| false]', got {line!r}")
        out.append((parts[0], parts[1], parts[2] if len(parts) == 3 else None))
    return out


def supplement() -> list[tuple[str, str, str]]:
    """(subject, object, filled-in prompt) of the neighbour-only table."""
    out = []
    for n, line in enumerate(SUPPLEMENT.strip().splitlines(), 1):
        parts = [p.strip() for p in line.split("|")]
        if len(parts) not in (3, 4) or not all(parts) or parts[0] not in RELATIONS:
            raise ValueError(f"make_facts.py: SUPPLEMENT row {n}: expected 'relation | object | subjects [| template]' "
                             f"with a known relation, got {line!r}")
        template = parts[3] if len(parts) == 4 else RELATIONS[parts[0]][0][0]
        if template.count("{}") != 1:
            raise ValueError(f"make_facts.py: SUPPLEMENT row {n}: template needs exactly one '{{}}': {template!r}")
        for subj in (x.strip() for x in parts[2].split(";")):
            if not subj:
                raise ValueError(f"make_facts.py: SUPPLEMENT row {n}: empty subject in {line!r}")
            out.append((subj, parts[1], template.format(subj)))
    return out


def _key(text: str) -> int:
    """A number keyed by a string, stable across Python runs (unlike hash())."""
    return int(hashlib.sha256(text.encode()).hexdigest(), 16)


def _draw(options: list[str], seed: str) -> str:
    """A deterministic choice from options, keyed by a string."""
    return sorted(options)[_key(seed) % len(options)]


def build() -> list[dict]:
    facts = []  # (relation, position in relation, subject, true, false)
    for rel in RELATIONS:
        table = rows(rel)
        objects = sorted({t for _, t, _ in table})
        for pos, (subj, true, false) in enumerate(table):
            if false is None:
                false = _draw([o for o in objects if o != true], f"{rel}|{subj}")
            if false == true:
                raise ValueError(f"make_facts.py: relation {rel}, subject {subj!r}: false object equals true object")
            facts.append((rel, pos, subj, true, false))
    keys = [(rel, subj) for rel, _, subj, _, _ in facts]
    if len(keys) != len(set(keys)):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"make_facts.py: duplicate (relation, subject) rows: {dup}")

    # every filled-in main prompt, by its true object → neighborhood / attribute pools
    by_object: dict[str, list[tuple[str, str]]] = {}
    for rel, _, subj, true, _ in facts:
        by_object.setdefault(true, []).append((subj, RELATIONS[rel][0][0].format(subj)))
    for subj, obj, prompt in supplement():
        if obj not in by_object:
            raise ValueError(f"make_facts.py: SUPPLEMENT object {obj!r} is no fact's true object")
        by_object[obj].append((subj, prompt))

    def about(obj: str, subject: str, k: int) -> list[str]:
        pool = list(dict.fromkeys(p for s, p in by_object.get(obj, []) if s != subject))
        # spread the choice: deterministic rotation keyed by the subject, then at most k
        if not pool:
            return []
        start = _key(subject) % len(pool)
        return (pool[start:] + pool[:start])[:k]

    # interleave relations; a subject's first fact (in table order) before any repeat of it
    seen: dict[str, int] = {}
    order = []
    for i, (rel, pos, subj, _, _) in enumerate(facts):
        occ = seen.get(subj, 0)
        seen[subj] = occ + 1
        order.append(((occ, pos, list(RELATIONS).index(rel)), i))
    order.sort()

    records = []
    for case_id, (_, i) in enumerate(order):
        rel, _, subj, true, false = facts[i]
        templates, generation, _ = RELATIONS[rel]
        records.append({
            "case_id": case_id,
            "requested_rewrite": {"prompt": templates[0], "subject": subj, "target_true": {"str": true},
                                  "target_new": {"str": false}, "relation_id": rel},
            "paraphrase_prompts": [t.format(subj) for t in templates[1:3]],
            "neighborhood_prompts": about(true, subj, N_NEIGHBORS),
            "attribute_prompts": about(false, subj, N_ATTRIBUTES),
            "generation_prompts": [g.format(subj) for g in generation],
        })
    return records


def main(argv: list[str]) -> None:
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).with_name("facts.json")
    records = build()
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(out)
    print(f"wrote {len(records)} records over {len(RELATIONS)} relations to {out}")


if __name__ == "__main__":
    main(sys.argv)
